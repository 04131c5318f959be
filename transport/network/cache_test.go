package network

import (
	"testing"

	"github.com/plazahq/plaza/pubsub"
)

// Two sweeps forget everything stored before them; one sweep keeps what
// was stored since the previous one.
func TestEncodeCacheSweep(t *testing.T) {
	var c encodeCache
	m1 := &pubsub.Message{ID: 1, Topic: "t", Payload: []byte(`1`)}
	c.get(m1)
	c.sweep()
	c.get(m1)
	if n := c.encodes.Load(); n != 1 {
		t.Fatalf("after one sweep, a fresh entry was encoded again (%d encodes)", n)
	}
	c.sweep()
	c.get(m1)
	if n := c.encodes.Load(); n != 2 {
		t.Fatalf("after two sweeps, the entry was still cached (%d encodes, want 2)", n)
	}
	c.sweep()
	c.sweep()
	for i := range c.sets {
		for w := range c.sets[i].ways {
			if c.sets[i].ways[w].Load() != nil {
				t.Fatal("an entry survived two sweeps")
			}
		}
	}
}
