package statetest_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/plazahq/plaza/transport/network"
	"github.com/plazahq/plaza/transport/network/statetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestMemorySocketStore(t *testing.T) {
	statetest.SocketStore(t, func(*testing.T) network.SocketStore { return network.NewMemorySocketStore(0) })
}

func TestMemorySocketStoreZero(t *testing.T) {
	statetest.SocketStore(t, func(*testing.T) network.SocketStore { return new(network.MemorySocketStore) })
}

func TestMemoryPublishWindow(t *testing.T) {
	statetest.PublishWindow(t, func(*testing.T) network.PublishWindow { return new(network.MemoryPublishWindow) })
}
