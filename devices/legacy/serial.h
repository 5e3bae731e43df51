/* SPDX-License-Identifier: MIT */
/*
 * 16550A-compatible UART (the PC's COM1 at 0x3f8, IRQ 4): the guest
 * console.  Transmit is immediate (THR always empty), received bytes wait
 * in a small FIFO fed by the VMM's event loop.
 */
#ifndef HUTCH_SERIAL_H
#define HUTCH_SERIAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/base/irq.h"
#include "vmm/base/bus.h"

#define SERIAL_COM1_BASE 0x3f8
#define SERIAL_COM1_IRQ	 4
#define SERIAL_NR_REGS	 8
#define SERIAL_RX_FIFO	 64

/* Register offsets and bits used by both the device and its tests. */
enum {
	UART_RBR = 0,
	UART_THR = 0,
	UART_DLL = 0,
	UART_IER = 1,
	UART_DLM = 1,
	UART_IIR = 2,
	UART_FCR = 2,
	UART_LCR = 3,
	UART_MCR = 4,
	UART_LSR = 5,
	UART_MSR = 6,
	UART_SCR = 7,
};

#define UART_IER_RDI	  0x01
#define UART_IER_THRI	  0x02
#define UART_IER_RLSI	  0x04
#define UART_IER_MSI	  0x08
#define UART_IIR_NO_INT	  0x01
#define UART_IIR_THRI	  0x02
#define UART_IIR_RDI	  0x04
#define UART_IIR_FIFO	  0xc0
#define UART_FCR_ENABLE	  0x01
#define UART_FCR_CLEAR_RX 0x02
#define UART_LCR_DLAB	  0x80
#define UART_MCR_DTR	  0x01
#define UART_MCR_RTS	  0x02
#define UART_MCR_OUT1	  0x04
#define UART_MCR_OUT2	  0x08
#define UART_MCR_LOOP	  0x10
#define UART_LSR_DR	  0x01
#define UART_LSR_THRE	  0x20
#define UART_LSR_TEMT	  0x40
#define UART_MSR_CTS	  0x10
#define UART_MSR_DSR	  0x20
#define UART_MSR_RI	  0x40
#define UART_MSR_DCD	  0x80

struct serial;

/* Where transmitted bytes go.  Returns nothing: a console that cannot be
 * written must not stop the guest. */
struct serial_sink {
	void (*write)(void *opaque, const uint8_t *buf, size_t len);
	void *opaque;
};

struct serial {
	pthread_mutex_t lock;
	struct serial_sink sink;
	struct irq_line irq;
	int irq_level;

	uint8_t ier, lcr, mcr, scr, fcr, dll, dlm;
	bool thr_empty_pending; /* THRE interrupt not yet acknowledged */
	uint64_t rx_open_ns;	/* when the guest enabled the RX interrupt */
	uint64_t rx_settle_ns;	/* input waits this long after that */
	uint8_t rx[SERIAL_RX_FIFO];
	unsigned rx_head, rx_count;
	/* Called (outside the lock) when the guest makes room in the RX FIFO,
	 * so the event loop can feed more input. */
	void (*rx_space)(void *opaque);
	void *rx_space_opaque;
};

extern const struct bus_dev_ops serial_bus_ops;

void serial_init(struct serial *s, struct serial_sink sink,
		 struct irq_line irq);
void serial_destroy(struct serial *s);

/* How long input is held after the guest's driver enables the RX
 * interrupt: Linux's 8250 startup goes on to drain RBR and reset the FIFO
 * within the same open(), which would eat input delivered at once. */
#define SERIAL_RX_SETTLE_NS (100 * 1000 * 1000ull)

/* Queue input for the guest; returns how many bytes were taken (none
 * until the guest's driver has listened for rx_settle_ns, at most the
 * FIFO's room). */
size_t serial_receive(struct serial *s, const uint8_t *buf, size_t len);

/* Nanoseconds until serial_receive() will take input: 0 now, UINT64_MAX
 * while the guest is not listening (rx_space fires when it starts). */
uint64_t serial_rx_wait_ns(struct serial *s);

/* Snapshots: the registers and unread input.  Restore: 0, or -EINVAL
 * (hostile input). */
struct snap_writer;
struct snap_reader;
void serial_save(struct serial *s, struct snap_writer *w);
int serial_restore(struct serial *s, struct snap_reader *r)
    __attribute__((warn_unused_result));

#endif
