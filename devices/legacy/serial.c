// SPDX-License-Identifier: MIT
#include "devices/legacy/serial.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "vmm/base/snap.h"

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Caller holds s->lock.  The line is level-triggered: raise it while any
 * enabled condition is pending. */
static uint8_t serial_iir(const struct serial *s)
{
	uint8_t fifo = (s->fcr & UART_FCR_ENABLE) ? UART_IIR_FIFO : 0;

	if ((s->ier & UART_IER_RDI) && s->rx_count)
		return fifo | UART_IIR_RDI;
	if ((s->ier & UART_IER_THRI) && s->thr_empty_pending)
		return fifo | UART_IIR_THRI;
	return fifo | UART_IIR_NO_INT;
}

static void serial_update_irq(struct serial *s)
{
	int level = !(serial_iir(s) & UART_IIR_NO_INT);

	/* Only a change costs an ioctl. */
	if (level != s->irq_level) {
		s->irq_level = level;
		irq_line_set(&s->irq, level);
	}
}

static uint8_t serial_msr(const struct serial *s)
{
	uint8_t m = s->mcr;

	if (!(m & UART_MCR_LOOP))
		return UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS;
	/* Loopback wires the modem outputs back to the inputs; Linux's 8250
	 * probe checks exactly this. */
	return ((m & UART_MCR_RTS) ? UART_MSR_CTS : 0) |
	       ((m & UART_MCR_DTR) ? UART_MSR_DSR : 0) |
	       ((m & UART_MCR_OUT1) ? UART_MSR_RI : 0) |
	       ((m & UART_MCR_OUT2) ? UART_MSR_DCD : 0);
}

static void rx_push_locked(struct serial *s, uint8_t c)
{
	if (s->rx_count == SERIAL_RX_FIFO)
		return; /* overrun: drop, as real hardware does */
	s->rx[(s->rx_head + s->rx_count) % SERIAL_RX_FIFO] = c;
	s->rx_count++;
}

static uint8_t serial_read_reg(struct serial *s, unsigned reg, bool *drained)
{
	uint8_t v = 0;

	switch (reg) {
	case UART_RBR:
		if (s->lcr & UART_LCR_DLAB)
			return s->dll;
		if (s->rx_count) {
			v = s->rx[s->rx_head];
			s->rx_head = (s->rx_head + 1) % SERIAL_RX_FIFO;
			s->rx_count--;
			*drained = true;
		}
		return v;
	case UART_IER:
		return (s->lcr & UART_LCR_DLAB) ? s->dlm : s->ier;
	case UART_IIR:
		v = serial_iir(s);
		/* Reading IIR acknowledges a THRE interrupt it reports. */
		if ((v & 0x0f) == UART_IIR_THRI)
			s->thr_empty_pending = false;
		return v;
	case UART_LCR:
		return s->lcr;
	case UART_MCR:
		return s->mcr;
	case UART_LSR:
		return UART_LSR_THRE | UART_LSR_TEMT |
		       (s->rx_count ? UART_LSR_DR : 0);
	case UART_MSR:
		return serial_msr(s);
	case UART_SCR:
		return s->scr;
	}
	return 0xff;
}

static void serial_write_reg(struct serial *s, unsigned reg, uint8_t v,
			     bool *drained)
{
	switch (reg) {
	case UART_THR:
		if (s->lcr & UART_LCR_DLAB) {
			s->dll = v;
			break;
		}
		if (s->mcr & UART_MCR_LOOP)
			rx_push_locked(s, v);
		else
			s->sink.write(s->sink.opaque, &v, 1);
		/* Transmission is instant, so THR is empty again at once. */
		s->thr_empty_pending = true;
		break;
	case UART_IER:
		if (s->lcr & UART_LCR_DLAB) {
			s->dlm = v;
			break;
		}
		/* Enabling THRI while THR is empty raises it (8250 behaviour
		 * the Linux driver relies on to start transmitting). */
		if (!(s->ier & UART_IER_THRI) && (v & UART_IER_THRI))
			s->thr_empty_pending = true;
		/* A driver that starts listening can soon take held-back
		 * input. */
		if (!(s->ier & UART_IER_RDI) && (v & UART_IER_RDI)) {
			s->rx_open_ns = mono_ns();
			*drained = true;
		}
		s->ier = v & 0x0f;
		break;
	case UART_FCR:
		s->fcr = v & (UART_FCR_ENABLE | 0xc0);
		if (v & UART_FCR_CLEAR_RX) {
			s->rx_head = s->rx_count = 0;
			*drained = true;
		}
		break;
	case UART_LCR:
		s->lcr = v;
		break;
	case UART_MCR:
		s->mcr = v & 0x1f;
		break;
	case UART_LSR:
	case UART_MSR:
		break; /* read-only */
	case UART_SCR:
		s->scr = v;
		break;
	}
}

static void serial_bus_read(void *opaque, uint64_t off, uint8_t *data,
			    unsigned len)
{
	struct serial *s = opaque;
	bool drained = false;

	pthread_mutex_lock(&s->lock);
	for (unsigned i = 0; i < len; i++)
		data[i] =
		    off + i < SERIAL_NR_REGS
			? serial_read_reg(s, (unsigned)(off + i), &drained)
			: 0xff;
	serial_update_irq(s);
	pthread_mutex_unlock(&s->lock);
	if (drained && s->rx_space)
		s->rx_space(s->rx_space_opaque);
}

static void serial_bus_write(void *opaque, uint64_t off, const uint8_t *data,
			     unsigned len)
{
	struct serial *s = opaque;
	bool drained = false;

	pthread_mutex_lock(&s->lock);
	for (unsigned i = 0; i < len && off + i < SERIAL_NR_REGS; i++)
		serial_write_reg(s, (unsigned)(off + i), data[i], &drained);
	serial_update_irq(s);
	pthread_mutex_unlock(&s->lock);
	if (drained && s->rx_space)
		s->rx_space(s->rx_space_opaque);
}

const struct bus_dev_ops serial_bus_ops = {
    .read = serial_bus_read,
    .write = serial_bus_write,
};

void serial_init(struct serial *s, struct serial_sink sink, struct irq_line irq)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	s->sink = sink;
	s->irq = irq;
	s->mcr = UART_MCR_OUT2;
	s->rx_settle_ns = SERIAL_RX_SETTLE_NS;
}

void serial_destroy(struct serial *s)
{
	pthread_mutex_destroy(&s->lock);
}

size_t serial_receive(struct serial *s, const uint8_t *buf, size_t len)
{
	size_t n = 0;

	pthread_mutex_lock(&s->lock);
	/* Hold input back until the guest's driver listens (RX interrupt
	 * enabled): Linux clears the FIFO when it opens the port, which would
	 * drop anything typed or piped in before that. */
	if (!(s->ier & UART_IER_RDI) ||
	    mono_ns() - s->rx_open_ns < s->rx_settle_ns)
		len = 0;
	while (n < len && s->rx_count < SERIAL_RX_FIFO)
		rx_push_locked(s, buf[n++]);
	serial_update_irq(s);
	pthread_mutex_unlock(&s->lock);
	return n;
}

uint64_t serial_rx_wait_ns(struct serial *s)
{
	uint64_t wait = UINT64_MAX, since;

	pthread_mutex_lock(&s->lock);
	if (s->ier & UART_IER_RDI) {
		since = mono_ns() - s->rx_open_ns;
		wait = since >= s->rx_settle_ns ? 0 : s->rx_settle_ns - since;
	}
	pthread_mutex_unlock(&s->lock);
	return wait;
}

#define SERIAL_SNAP_LAYOUT 1

void serial_save(struct serial *s, struct snap_writer *w)
{
	pthread_mutex_lock(&s->lock);
	snap_put_u32(w, SERIAL_SNAP_LAYOUT);
	snap_put_u8(w, s->ier);
	snap_put_u8(w, s->lcr);
	snap_put_u8(w, s->mcr);
	snap_put_u8(w, s->scr);
	snap_put_u8(w, s->fcr);
	snap_put_u8(w, s->dll);
	snap_put_u8(w, s->dlm);
	snap_put_u8(w, s->thr_empty_pending);
	snap_put_u8(w, (uint8_t)s->rx_count);
	for (unsigned i = 0; i < s->rx_count; i++)
		snap_put_u8(w, s->rx[(s->rx_head + i) % SERIAL_RX_FIFO]);
	pthread_mutex_unlock(&s->lock);
}

int serial_restore(struct serial *s, struct snap_reader *r)
{
	uint32_t layout;
	uint8_t thre, n;

	pthread_mutex_lock(&s->lock);
	layout = snap_get_u32(r);
	s->ier = snap_get_u8(r) & 0x0f;
	s->lcr = snap_get_u8(r);
	s->mcr = snap_get_u8(r) & 0x1f;
	s->scr = snap_get_u8(r);
	s->fcr = snap_get_u8(r);
	s->dll = snap_get_u8(r);
	s->dlm = snap_get_u8(r);
	thre = snap_get_u8(r);
	n = snap_get_u8(r);
	s->rx_head = 0;
	s->rx_count = 0;
	for (unsigned i = 0; i < n && i < SERIAL_RX_FIFO; i++)
		s->rx[s->rx_count++] = snap_get_u8(r);
	s->thr_empty_pending = thre != 0;
	/* A driver that was listening before the snapshot has settled. */
	s->rx_open_ns = mono_ns() - s->rx_settle_ns;
	if (layout != SERIAL_SNAP_LAYOUT || thre > 1 || n > SERIAL_RX_FIFO ||
	    snap_reader_done(r)) {
		pthread_mutex_unlock(&s->lock);
		return -EINVAL;
	}
	/* The line as the registers say; the interrupt controller was
	 * restored with the level the snapshot saw. */
	s->irq_level = -1;
	serial_update_irq(s);
	pthread_mutex_unlock(&s->lock);
	return 0;
}
