package transporttest

import (
	"context"
	"sync"

	"github.com/plazahq/plaza/pubsub"
)

// recorder wraps a Transport, recording the wire calls its Conns make and
// injecting faults on demand.
type recorder struct {
	pubsub.Transport

	mu         sync.Mutex
	subscribes []pubsub.SubscribeRequest
	unsubs     []string
	publishes  []pubsub.PublishRequest
	// loseReplies makes that many next Publish calls reach the hub and then
	// report NETWORK_ERROR, as if the reply was lost.
	loseReplies int
	// gate, when set, holds Connect until it is closed.
	gate chan struct{}
}

func (w *recorder) Connect(ctx context.Context, req pubsub.ConnectRequest) (pubsub.Conn, error) {
	w.mu.Lock()
	gate := w.gate
	w.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	c, err := w.Transport.Connect(ctx, req)
	if err != nil {
		return nil, err
	}
	rc := &recConn{Conn: c, w: w}
	if bc, ok := c.(pubsub.BatchConn); ok {
		return &recBatchConn{recConn: rc, bc: bc}, nil // the Room takes batches, as it would unwrapped
	}
	return rc, nil
}

func (w *recorder) hold() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.gate = make(chan struct{})
}

func (w *recorder) release() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.gate != nil {
		close(w.gate)
		w.gate = nil
	}
}

func (w *recorder) wire() ([]pubsub.SubscribeRequest, []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]pubsub.SubscribeRequest(nil), w.subscribes...), append([]string(nil), w.unsubs...)
}

func (w *recorder) sent() []pubsub.PublishRequest {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]pubsub.PublishRequest(nil), w.publishes...)
}

type recConn struct {
	pubsub.Conn
	w *recorder
}

// recBatchConn is a recConn of a pubsub.BatchConn.
type recBatchConn struct {
	*recConn
	bc pubsub.BatchConn
}

func (c *recBatchConn) Ready() <-chan struct{}                       { return c.bc.Ready() }
func (c *recBatchConn) Take(dst []*pubsub.Message) []*pubsub.Message { return c.bc.Take(dst) }

func (c *recConn) Publish(ctx context.Context, req pubsub.PublishRequest) (pubsub.Message, error) {
	c.w.mu.Lock()
	c.w.publishes = append(c.w.publishes, req)
	lose := c.w.loseReplies > 0
	if lose {
		c.w.loseReplies--
	}
	c.w.mu.Unlock()
	m, err := c.Conn.Publish(ctx, req)
	if lose && err == nil {
		return pubsub.Message{}, pubsub.Errorf(pubsub.CodeNetworkError, "reply lost (injected)")
	}
	return m, err
}

func (c *recConn) Subscribe(ctx context.Context, req pubsub.SubscribeRequest) error {
	c.w.mu.Lock()
	c.w.subscribes = append(c.w.subscribes, req)
	c.w.mu.Unlock()
	return c.Conn.Subscribe(ctx, req)
}

func (c *recConn) Unsubscribe(ctx context.Context, topic string) error {
	c.w.mu.Lock()
	c.w.unsubs = append(c.w.unsubs, topic)
	c.w.mu.Unlock()
	return c.Conn.Unsubscribe(ctx, topic)
}
