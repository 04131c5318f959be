package memory

import (
	"sync/atomic"

	"github.com/plazahq/plaza/pubsub"
)

// ChannelSlots is how many messages the channel a connection's Messages
// method returns holds. Messages beyond them wait in the connection's
// backlog, which Options.QueueBytes bounds.
const ChannelSlots = 128

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
// goroutine (pump) that runs only while the backlog is not empty. While no
// pump runs a delivery is a plain send on the channel; the backlog, counted
// by queuedSize, holds at most the connection's bound, so that an idle
// connection costs a small channel and a stalled one at most its bound
// beyond the channel's ChannelSlots messages.
type queue struct {
	ch      chan *pubsub.Message // never closed
	pumping atomic.Bool          // a pump runs; deliveries go to the backlog
	bytes   atomic.Int64         // of the backlog and of what the pump holds

	// Guarded by conn.qmu.
	backlog []*pubsub.Message // waiting behind ch, oldest first
	spare   []*pubsub.Message // the backlog's other buffer
}

// push puts m, of size n (its queuedSize), in c's queue without waiting.
// It reports false when the channel is full, the backlog holds messages and
// m would take it beyond c's bound: the caller then drops c. A message that
// finds the backlog empty always fits, so one larger than the bound is
// delivered to a connection that keeps up.
//
// The messages of one topic are pushed one at a time (under the topic's
// lock), so they stay in order: once one has gone to the backlog, the
// pump is running and the next goes there too.
func (c *conn) push(m *pubsub.Message, n int) bool {
	q := &c.q
	if !q.pumping.Load() {
		select {
		case q.ch <- m:
			return true
		default:
		}
	}
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if b := q.bytes.Load(); b > 0 && b+int64(n) > int64(c.bound) {
		return false
	}
	q.bytes.Add(int64(n))
	q.backlog = append(q.backlog, m)
	if !q.pumping.Load() {
		q.pumping.Store(true)
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
			q.backlog, q.spare = nil, nil // an idle connection holds no backlog
			q.bytes.Store(0)
			q.pumping.Store(false)
			c.qmu.Unlock()
			return
		}
		batch := q.backlog
		q.backlog, q.spare = q.spare[:0], nil
		c.qmu.Unlock()
		for i := 0; i < len(batch); {
			// Send what fits without waiting; wait only when the channel is
			// full.
			j := i
		fill:
			for j < len(batch) {
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
					q.backlog, q.spare = nil, nil
					q.bytes.Store(0)
					q.pumping.Store(false)
					c.qmu.Unlock()
					return
				}
			}
			n := 0
			for _, m := range batch[i:j] {
				n += queuedSize(m)
			}
			q.bytes.Add(-int64(n))
			clear(batch[i:j])
			i = j
		}
		c.qmu.Lock()
		q.spare = batch[:0]
		c.qmu.Unlock()
	}
}
