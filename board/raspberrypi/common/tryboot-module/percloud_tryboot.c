// SPDX-License-Identifier: GPL-2.0-only
/*
 * percloud_tryboot: `reboot "0 tryboot"` on a kernel without the Raspberry Pi kernel's
 * firmware patches (Debian's arm64 kernel).
 *
 * A reboot notifier: when the restart command contains "tryboot", it sends the firmware
 * property SET_REBOOT_FLAGS = 1 through the raspberrypi firmware driver before the reset,
 * so that the bootloader boots autoboot.txt's [tryboot] partition once.
 */

#include <linux/init.h>
#include <linux/module.h>
#include <linux/notifier.h>
#include <linux/mod_devicetable.h>
#include <linux/of.h>
#include <linux/reboot.h>
#include <linux/string.h>
#include <soc/bcm2835/raspberrypi-firmware.h>

/* Not in the upstream tag list; the Raspberry Pi kernel's RPI_FIRMWARE_SET_REBOOT_FLAGS. */
#define PERCLOUD_SET_REBOOT_FLAGS 0x00038064
#define PERCLOUD_REBOOT_FLAG_TRYBOOT 0x1

static struct rpi_firmware *firmware;

static int percloud_tryboot_notify(struct notifier_block *nb, unsigned long action, void *data)
{
	const char *cmd = data;
	u32 flags = PERCLOUD_REBOOT_FLAG_TRYBOOT;
	int ret;

	if (action != SYS_RESTART || !cmd || !strstr(cmd, "tryboot"))
		return NOTIFY_DONE;
	ret = rpi_firmware_property(firmware, PERCLOUD_SET_REBOOT_FLAGS, &flags, sizeof(flags));
	if (ret)
		pr_err("percloud_tryboot: SET_REBOOT_FLAGS=1 failed (%d): the next boot is the default partition\n",
		       ret);
	else
		pr_info("percloud_tryboot: SET_REBOOT_FLAGS=1 sent for \"%s\"; the firmware answered 0x%08x\n",
			cmd, flags);
	return NOTIFY_DONE;
}

static struct notifier_block percloud_tryboot_nb = {
	.notifier_call = percloud_tryboot_notify,
	/* Before other notifiers that might stop the mailbox. */
	.priority = 128,
};

static int __init percloud_tryboot_init(void)
{
	struct device_node *node;
	int ret;

	node = of_find_compatible_node(NULL, NULL, "raspberrypi,bcm2835-firmware");
	if (!node)
		return -ENODEV;
	firmware = rpi_firmware_get(node);
	of_node_put(node);
	if (!firmware)
		return -EPROBE_DEFER;
	ret = register_reboot_notifier(&percloud_tryboot_nb);
	if (ret) {
		rpi_firmware_put(firmware);
		return ret;
	}
	pr_info("percloud_tryboot: ready: a reboot with \"tryboot\" sets the firmware's one-shot flag\n");
	return 0;
}

static void __exit percloud_tryboot_exit(void)
{
	unregister_reboot_notifier(&percloud_tryboot_nb);
	rpi_firmware_put(firmware);
}

/*
 * No driver binds here (the built-in firmware driver owns the node): the table only gives
 * the module the firmware node's modalias, so the image's boot-time modalias scan (rcS)
 * loads it on Raspberry Pi boards and nowhere else.
 */
static const struct of_device_id percloud_tryboot_of_match[] = {
	{ .compatible = "raspberrypi,bcm2835-firmware" },
	{}
};
MODULE_DEVICE_TABLE(of, percloud_tryboot_of_match);

module_init(percloud_tryboot_init);
module_exit(percloud_tryboot_exit);

MODULE_DESCRIPTION("Send the Raspberry Pi firmware's tryboot flag on reboot \"0 tryboot\"");
MODULE_AUTHOR("percloud");
MODULE_LICENSE("GPL");
