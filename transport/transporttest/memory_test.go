package transporttest_test

import (
	"path/filepath"
	"testing"

	"github.com/plazahq/plaza/history"
	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
	"github.com/plazahq/plaza/transport/transporttest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The suite runs against the in-process hub here, with both history stores;
// transport/network runs it over WebSocket.
func TestMemoryHub(t *testing.T) {
	transporttest.Run(t, func(t *testing.T, cfg transporttest.Config) transporttest.Harness {
		return memoryHarness(t, cfg, nil)
	})
}

func TestMemoryHubDurable(t *testing.T) {
	transporttest.Run(t, func(t *testing.T, cfg transporttest.Config) transporttest.Harness {
		store, err := history.OpenBolt(filepath.Join(t.TempDir(), "history.db"), history.BoltOptions{Options: history.Options{Clock: cfg.Clock}})
		if err != nil {
			t.Fatalf("OpenBolt() = %v", err)
		}
		t.Cleanup(func() { store.Close() }) // runs after the hub's Close
		return memoryHarness(t, cfg, store)
	})
}

func memoryHarness(t *testing.T, cfg transporttest.Config, store history.Store) transporttest.Harness {
	hub, err := memory.New(memory.Options{
		Store:        store,
		Clock:        cfg.Clock,
		PublishRate:  cfg.PublishRate,
		PublishBurst: cfg.PublishBurst,
		Authorize:    cfg.Authorize,
		QueueBytes:   cfg.QueueBytes,
	})
	if err != nil {
		t.Fatalf("memory.New() = %v", err)
	}
	t.Cleanup(func() { hub.Close() })
	return transporttest.Harness{
		Transport:  hub,
		Disconnect: func(room, clientID string) { hub.Disconnect(room, clientID) },
	}
}

var _ pubsub.Transport = (*memory.Hub)(nil)
