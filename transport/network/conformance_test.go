package network

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
	"github.com/plazahq/plaza/transport/transporttest"
)

// TestConformance runs the transport suite against Rooms on a Client, through
// a Server, to a memory hub, over loopback.
func TestConformance(t *testing.T) {
	transporttest.Run(t, func(t *testing.T, cfg transporttest.Config) transporttest.Harness {
		hub, err := memory.New(memory.Options{
			Clock:        cfg.Clock,
			PublishRate:  cfg.PublishRate,
			PublishBurst: cfg.PublishBurst,
			Authorize:    cfg.Authorize,
			QueueSize:    cfg.QueueSize,
		})
		if err != nil {
			t.Fatalf("memory.New() = %v", err)
		}
		srv := NewServer(hub, Options{
			Authenticate: testAuthenticate,
			Clock:        cfg.Clock,
			MaxFrameRate: -1, // the suite's clock stands still
		})
		ts := httptest.NewServer(srv)
		client, err := NewClient(ts.URL, nil)
		if err != nil {
			t.Fatalf("NewClient() = %v", err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				t.Errorf("Shutdown() = %v", err)
			}
			ts.Close()
			hub.Close()
		})
		return transporttest.Harness{
			Transport: idTokens{client},
			Disconnect: func(room, clientID string) {
				hub.Disconnect(room, clientID)
			},
		}
	})
}

// idTokens turns the ClientID the suite's Rooms ask for into a credential
// that testAuthenticate accepts: in this harness, the credential is what
// proves the identity, as it would be with real tokens.
type idTokens struct{ *Client }

func (t idTokens) Connect(ctx context.Context, req pubsub.ConnectRequest) (pubsub.Conn, error) {
	if req.Token == "" && req.ClientID != "" {
		req.Token = testTokenPrefix + req.ClientID
	}
	return t.Client.Connect(ctx, req)
}
