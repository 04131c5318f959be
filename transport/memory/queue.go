package memory

import "github.com/plazahq/plaza/pubsub"

// handSlots is the buffer of a connection's Messages channel: how many
// messages it holds before the rest wait in the connection's backlog.
const handSlots = 128

// MessageOverhead is what [Options.QueueBytes] counts for a queued message
// on top of the lengths of its payload, topic, sender, recipients and
// metadata: about what its id, timestamp and field names take once encoded.
const MessageOverhead = 64

// queuedSize is what m counts against a connection's queue bound: the
// lengths of its variable parts plus MessageOverhead. It is an estimate of
// its encoded size, cheap enough to take once per publish.
func queuedSize(m *pubsub.Message) int {
	n := MessageOverhead + len(m.Payload) + len(m.Topic) + len(m.From)
	for _, to := range m.To {
		n += len(to) + 3
	}
	for k, v := range m.Metadata {
		n += len(k) + len(v) + 6
	}
	return n
}

// queue is a connection's delivery queue: the Messages channel, and behind
// it a backlog that grows on demand and is moved into the channel by a
// goroutine (pump) that runs only while the backlog is not empty. Together
// they hold at most bound bytes, counted by queuedSize, so that an idle
// connection costs a small channel and a stalled one at most its bound.
//
// The bytes in the channel are counted until the reader takes them out:
// sizes records the size of each message sent to the channel, oldest
// first, and settle forgets those the reader has taken, which are the
// oldest, by comparing how many were sent with how many remain.
type queue struct {
	ch chan *pubsub.Message // never closed

	// Guarded by conn.qmu.
	bytes   int               // queued: in the channel or the backlog
	sizes   [handSlots]int32  // of the messages sent to ch, a ring
	head    int               // index in sizes of the oldest
	inCh    int               // messages recorded in sizes
	backlog []*pubsub.Message // waiting behind ch, oldest first
	spare   []*pubsub.Message // the backlog's other buffer
	pumping bool              // a pump runs; only it sends to ch
}

// settle forgets the messages the reader has taken from the channel, given
// that extra of those in the channel are not recorded yet. Call it with
// conn.qmu held.
func (q *queue) settle(extra int) {
	for n := max(len(q.ch)-extra, 0); q.inCh > n; q.inCh-- {
		q.bytes -= int(q.sizes[q.head])
		q.head = (q.head + 1) % handSlots
	}
}

// record counts ms, just sent to the channel in this order. Call it with
// conn.qmu held.
func (q *queue) record(ms ...*pubsub.Message) {
	q.settle(len(ms))
	for _, m := range ms {
		q.sizes[(q.head+q.inCh)%handSlots] = int32(queuedSize(m))
		q.inCh++
	}
}

// push puts m, of size n (its queuedSize), in c's queue without waiting.
// It reports false when the queue already holds bytes and m would take it
// beyond its bound: the caller then drops c. A message that finds the
// queue empty always fits, so one larger than the bound is delivered to a
// connection that keeps up.
func (c *conn) push(m *pubsub.Message, n int) bool {
	q := &c.q
	c.qmu.Lock()
	defer c.qmu.Unlock()
	q.settle(0)
	if q.bytes > 0 && q.bytes+n > c.bound {
		return false
	}
	q.bytes += n
	if !q.pumping {
		select {
		case q.ch <- m:
			q.settle(1)
			q.sizes[(q.head+q.inCh)%handSlots] = int32(n)
			q.inCh++
			return true
		default:
		}
	}
	q.backlog = append(q.backlog, m)
	if !q.pumping {
		q.pumping = true
		go c.pump()
	}
	return true
}

// pump moves the backlog into the channel, in order, waiting for the
// reader, until the backlog is empty or the connection has ended.
func (c *conn) pump() {
	q := &c.q
	for {
		c.qmu.Lock()
		if len(q.backlog) == 0 || c.state.Load() != stateLive {
			q.pumping = false
			q.backlog, q.spare = nil, nil // an idle connection holds no backlog
			c.qmu.Unlock()
			return
		}
		batch := q.backlog
		q.backlog, q.spare = q.spare[:0], nil
		c.qmu.Unlock()
		for i := 0; i < len(batch); {
			// Send what fits without waiting, at most what the ring of
			// sizes holds, then count it under one lock; wait only when the
			// channel is full.
			j := i
		fill:
			for j < len(batch) && j-i < handSlots {
				select {
				case q.ch <- batch[j]:
					j++
				default:
					break fill
				}
			}
			if j == i {
				select {
				case q.ch <- batch[i]:
					j++
				case <-c.done:
					clear(batch)
					c.qmu.Lock()
					q.pumping = false
					q.backlog, q.spare = nil, nil
					c.qmu.Unlock()
					return
				}
			}
			c.qmu.Lock()
			q.record(batch[i:j]...)
			c.qmu.Unlock()
			clear(batch[i:j])
			i = j
		}
		c.qmu.Lock()
		q.spare = batch[:0]
		c.qmu.Unlock()
	}
}
