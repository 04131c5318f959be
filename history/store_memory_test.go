package history_test

import (
	"testing"

	"github.com/plazahq/plaza/history"
	"github.com/plazahq/plaza/history/historytest"
)

func TestMemory(t *testing.T) {
	t.Parallel()
	historytest.Run(t, func(t *testing.T, opts history.Options) history.Store {
		s := history.NewMemory(opts)
		t.Cleanup(func() { s.Close() })
		return s
	})
}
