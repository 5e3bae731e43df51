// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: a hostile snapshot state file against everything
 * that reads one before a restored VM runs: the file codec (size, magic,
 * version, CRC, section headers), the configuration section, the x86 VM
 * and vCPU decoders, the UART's state, and the virtio transport's state
 * checked against fake guest memory (queue rings and indexes).
 *
 * Input: one flag byte, then the state file.  Flag bit 0: make the CRC
 * right first (so the fuzzer gets past it to the sections); otherwise the
 * file is taken as it is.  The file's bytes after the CRC fix are the
 * guest RAM's too (so queue addresses can land on rings the file itself
 * describes).  Besides AddressSanitizer's checks, it aborts if a reader
 * claims success after reading past its section.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "devices/legacy/serial.h"
#include "devices/virtio/virtio.h"
#include "tests/support/fake_ring.h"
#include "vmm/base/le.h"
#include "vmm/base/log.h"
#include "vmm/snapshot.h"
#include "vmm/x86/snap_x86.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RAM_SIZE 0x10000u

static struct fake_mem fm;
static struct serial uart;
static struct virtio_dev vdev;
static struct x86_vcpu_state *vcpu;
static uint8_t file[1 << 16];

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond))                                                   \
			abort();                                               \
	} while (0)

static const struct virtio_dev_ops ops = {
    .name = "fuzz",
    .device_id = 4,
    .num_queues = 2,
    .queue_max = 256,
};

static void init_once(void)
{
	static int done;
	struct guest_region r = {.gpa = 0, .size = RAM_SIZE};
	struct virtio_host host = {.vm_fd = -1, .ep = -1};

	if (done)
		return;
	done = 1;
	log_set_verbose(false);
	fake_mem_init_regions(&fm, &r, 1);
	host.mem = &fm.mem;
	serial_init(&uart, (struct serial_sink){0}, (struct irq_line){0});
	CHECK(virtio_dev_init(&vdev, &ops,
			      VIRTIO_F_EVENT_IDX | VIRTIO_F_INDIRECT_DESC,
			      &host, 0x1000, 5) == 0);
	vcpu = x86_vcpu_state_new(X86_XSAVE_LEGACY_LEN);
	CHECK(vcpu);
}

static void one_section(uint32_t tag, struct snap_reader *sec)
{
	struct snapshot_config conf;
	struct x86_vm_state vm;
	struct snap_reader r = *sec;
	int ret = 0;

	switch (tag) {
	case SNAP_SEC_CONFIG:
		ret = snapshot_config_get(&r, &conf);
		if (!ret) {
			CHECK(conf.ndevices <= VM_MAX_DEVICES);
			for (unsigned i = 0; i < conf.ndevices; i++)
				CHECK(memchr(conf.devices[i].path, 0,
					     sizeof(conf.devices[i].path)));
		}
		break;
	case SNAP_SEC_ARCH:
		ret = x86_vm_state_decode(&r, &vm);
		break;
	case SNAP_SEC_VCPU:
		ret = x86_vcpu_state_decode(&r, 0, vcpu);
		if (!ret)
			CHECK(vcpu->nmsrs <= X86_SNAP_MAX_MSRS);
		break;
	case SNAP_SEC_SERIAL:
		ret = serial_restore(&uart, &r);
		if (!ret)
			CHECK(uart.rx_count <= SERIAL_RX_FIFO);
		break;
	default:
		/* Anything else as a virtio device's transport. */
		ret = virtio_dev_restore(&vdev, &r);
		if (!ret) {
			for (unsigned q = 0; q < ops.num_queues; q++)
				CHECK(!vdev.queues[q].ready ||
				      vdev.queues[q].size <= ops.queue_max);
			ret = snap_reader_done(&r);
		}
		break;
	}
	/* Success means the section was read exactly, never past it. */
	CHECK(r.off <= r.len);
	if (ret == 0)
		CHECK(!r.bad);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct snap_reader body, sec;
	uint32_t tag, inst;
	uint16_t minor;
	const char *why;
	size_t len;
	int ret;

	init_once();
	if (size < 1 || size - 1 > sizeof(file))
		return 0;
	len = size - 1;
	memcpy(file, data + 1, len);
	if ((data[0] & 1) && len >= SNAP_HEADER_LEN + 4)
		put_le32(file + len - 4,
			 (uint32_t)crc32(0, file, (uInt)(len - 4)));
	/* The same bytes as guest RAM. */
	memset(fm.mem.host, 0, RAM_SIZE);
	memcpy(fm.mem.host, file, len < RAM_SIZE ? len : RAM_SIZE);

	if (snap_file_open(file, len, &body, &minor, &why))
		return 0;
	CHECK(why == NULL || why[0]);
	while ((ret = snap_next_section(&body, &tag, &inst, &sec)) == 1) {
		CHECK(sec.p >= file && sec.p + sec.len <= file + len);
		one_section(tag, &sec);
	}
	CHECK(ret == 0 || ret == -EINVAL);
	return 0;
}
