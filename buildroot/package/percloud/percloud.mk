################################################################################
#
# percloud: built from the repository this BR2_EXTERNAL tree lives in, with Buildroot's
# cargo-package infrastructure (vendored dependencies, offline build).
#
################################################################################

PERCLOUD_VERSION = 0.1.0
PERCLOUD_SITE = $(BR2_EXTERNAL_PERCLOUD_PATH)/..
PERCLOUD_SITE_METHOD = local
PERCLOUD_LICENSE = AGPL-3.0-or-later
PERCLOUD_LICENSE_FILES = README.md
PERCLOUD_SUBDIR = appliance/percloud
PERCLOUD_CARGO_BUILD_OPTS = --profile image
PERCLOUD_CARGO_INSTALL_OPTS = --profile image

$(eval $(cargo-package))
