// SPDX-License-Identifier: MIT
/* 8250 UART register behaviour as Linux's driver relies on it. */
#include <criterion/criterion.h>
#include <unistd.h>

#include "devices/legacy/serial.h"

static struct serial uart;
static char out[256];
static size_t out_len;
static int irq_level, irq_changes, space_calls;

static void sink(void *opaque, const uint8_t *buf, size_t len)
{
	(void)opaque;
	memcpy(out + out_len, buf, len);
	out_len += len;
}

static void set_irq(void *opaque, unsigned gsi, int level)
{
	(void)opaque;
	cr_assert_eq(gsi, 4);
	irq_level = level;
	irq_changes++;
}

static void on_space(void *opaque)
{
	(void)opaque;
	space_calls++;
}

static void setup(void)
{
	out_len = 0;
	irq_level = irq_changes = space_calls = 0;
	serial_init(&uart, (struct serial_sink){sink, NULL},
		    (struct irq_line){set_irq, NULL, 4});
	uart.rx_space = on_space;
	uart.rx_settle_ns = 0;
}

static uint8_t rd(unsigned reg)
{
	uint8_t v;

	serial_bus_ops.read(&uart, reg, &v, 1);
	return v;
}

static void wr(unsigned reg, uint8_t v)
{
	serial_bus_ops.write(&uart, reg, &v, 1);
}

TestSuite(serial, .init = setup);

Test(serial, transmit_reaches_the_sink_and_thr_is_always_empty)
{
	wr(UART_THR, 'h');
	wr(UART_THR, 'i');
	cr_assert_eq(out_len, 2);
	cr_assert_eq(memcmp(out, "hi", 2), 0);
	cr_assert_eq(rd(UART_LSR) & (UART_LSR_THRE | UART_LSR_TEMT),
		     UART_LSR_THRE | UART_LSR_TEMT);
}

Test(serial, divisor_latch_does_not_transmit)
{
	wr(UART_LCR, UART_LCR_DLAB | 3);
	wr(UART_DLL, 0x0c);
	wr(UART_DLM, 0x00);
	cr_assert_eq(rd(UART_DLL), 0x0c);
	cr_assert_eq(out_len, 0);
	wr(UART_LCR, 3);
	cr_assert_eq(rd(UART_LCR), 3);
	cr_assert_eq(rd(UART_IER), 0, "IER untouched by DLM write");
}

Test(serial, loopback_mirrors_modem_lines)
{
	/* Linux's 8250 probe: MCR = LOOP|OUT2|RTS must read MSR 0x90 */
	wr(UART_MCR, UART_MCR_LOOP | 0x0a);
	cr_assert_eq(rd(UART_LSR) & UART_LSR_DR, 0);
	cr_assert_eq(rd(UART_MSR) & 0xf0, 0x90);
	wr(UART_THR, 'x');
	cr_assert_eq(out_len, 0, "loopback keeps bytes inside");
	cr_assert(rd(UART_LSR) & UART_LSR_DR);
	cr_assert_eq(rd(UART_RBR), 'x');
	wr(UART_MCR, UART_MCR_OUT2);
	cr_assert_eq(rd(UART_MSR) & 0xb0, 0xb0, "DCD DSR CTS when not looped");
}

Test(serial, fifo_reported_when_enabled)
{
	cr_assert_eq(rd(UART_IIR), UART_IIR_NO_INT);
	wr(UART_FCR, UART_FCR_ENABLE);
	cr_assert_eq(rd(UART_IIR), UART_IIR_FIFO | UART_IIR_NO_INT);
}

Test(serial, thre_interrupt_raised_and_acknowledged)
{
	wr(UART_IER, UART_IER_THRI);
	cr_assert_eq(irq_level, 1, "enabling THRI with THR empty raises it");
	cr_assert_eq(rd(UART_IIR) & 0x0f, UART_IIR_THRI);
	cr_assert_eq(irq_level, 0, "reading IIR acknowledged it");
	wr(UART_THR, 'a');
	cr_assert_eq(irq_level, 1, "transmit done raises it again");
	wr(UART_IER, 0);
	cr_assert_eq(irq_level, 0);
}

Test(serial, receive_fifo_interrupt_and_backpressure)
{
	uint8_t in[100];

	memset(in, 'q', sizeof(in));
	cr_assert_eq(serial_receive(&uart, in, 3), 0,
		     "held back until the driver listens");
	wr(UART_IER, UART_IER_RDI);
	cr_assert_eq(space_calls, 1, "listening: event loop may feed input");
	space_calls = 0;
	cr_assert_eq(irq_level, 0);
	cr_assert_eq(serial_receive(&uart, in, 3), 3);
	cr_assert_eq(irq_level, 1);
	cr_assert_eq(rd(UART_IIR) & 0x0f, UART_IIR_RDI);
	cr_assert_eq(rd(UART_RBR), 'q');
	cr_assert_eq(space_calls, 1, "event loop told there is room");
	rd(UART_RBR);
	rd(UART_RBR);
	cr_assert_eq(irq_level, 0, "drained");
	cr_assert_eq(rd(UART_LSR) & UART_LSR_DR, 0);
	cr_assert_eq(rd(UART_RBR), 0, "empty FIFO reads 0");
	cr_assert_eq(serial_receive(&uart, in, sizeof(in)), SERIAL_RX_FIFO,
		     "only what fits is taken");
}

Test(serial, scratch_and_out_of_range_offsets)
{
	uint8_t v[2] = {0x5a, 0x77};

	wr(UART_SCR, 0xa5);
	cr_assert_eq(rd(UART_SCR), 0xa5);
	/* A 2-byte access at the last register must not run off the end. */
	serial_bus_ops.write(&uart, 7, v, 2);
	cr_assert_eq(rd(UART_SCR), 0x5a);
	serial_bus_ops.read(&uart, 7, v, 2);
	cr_assert_eq(v[1], 0xff);
}

Test(serial, input_waits_for_the_driver_to_settle)
{
	uint8_t c = 'z';

	uart.rx_settle_ns = 50 * 1000 * 1000;
	cr_assert_eq(serial_rx_wait_ns(&uart), UINT64_MAX, "not listening");
	wr(UART_IER, UART_IER_RDI);
	cr_assert_eq(serial_receive(&uart, &c, 1), 0, "too soon after open");
	cr_assert(serial_rx_wait_ns(&uart) > 0 &&
		  serial_rx_wait_ns(&uart) <= 50 * 1000 * 1000);
	usleep(60 * 1000);
	cr_assert_eq(serial_rx_wait_ns(&uart), 0);
	cr_assert_eq(serial_receive(&uart, &c, 1), 1);
}
