include $(sort $(wildcard $(BR2_EXTERNAL_PERCLOUD_PATH)/package/*/*.mk))
