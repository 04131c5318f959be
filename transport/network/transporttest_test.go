package network

import (
	"context"
	"testing"

	"github.com/plazahq/plaza/internal/fakeclock"
	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
	"github.com/plazahq/plaza/transport/transporttest"
)

// TestTransportConformance runs the conformance suite with Rooms on a
// Client, over WebSocket to a Server of a memory hub.
func TestTransportConformance(t *testing.T) {
	transporttest.Run(t, func(t *testing.T, cfg transporttest.Config) transporttest.Harness {
		hopts := memory.Options{
			Clock:        cfg.Clock,
			PublishRate:  cfg.PublishRate,
			PublishBurst: cfg.PublishBurst,
			Authorize:    cfg.Authorize,
			QueueBytes:   cfg.QueueBytes,
		}
		clock, _ := cfg.Clock.(*fakeclock.Clock)
		opts := Options{}
		if clock != nil {
			opts.Clock = clock
		}
		f := newFixture(t, hopts, opts)
		return transporttest.Harness{
			Transport:  asClientID{f.client},
			Disconnect: func(room, id string) { f.hub.Disconnect(room, id) },
		}
	})
}

// asClientID is a Client whose Connect proves the ClientID it is asked
// for, with testAuthenticate's token.
type asClientID struct{ c *Client }

func (a asClientID) Connect(ctx context.Context, req pubsub.ConnectRequest) (pubsub.Conn, error) {
	req.Token = testTokenPrefix + req.ClientID
	return a.c.Connect(ctx, req)
}
