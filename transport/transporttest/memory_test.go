package transporttest_test

import (
	"testing"

	"github.com/plazahq/plaza/transport/memory"
	"github.com/plazahq/plaza/transport/transporttest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The suite runs against the in-process hub here; transport/network runs it
// over WebSocket.
func TestMemoryHub(t *testing.T) {
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
		t.Cleanup(func() { hub.Close() })
		return transporttest.Harness{
			Transport:  hub,
			Disconnect: func(room, clientID string) { hub.Disconnect(room, clientID) },
		}
	})
}
