// Package snowid generates snowflake ids from an explicit time.
//
// The ids have the layout of github.com/bwmarrin/snowflake: 41 bits of
// milliseconds since [snowflake.Epoch], 10 bits of node and 12 bits of
// sequence. Unlike snowflake.Node, a [Generator] takes the time as an argument
// (so tests can drive it with a fake clock), never goes backwards when the
// clock does, and can be told a floor it must stay above, such as the highest
// id a history store already holds.
package snowid

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/bwmarrin/snowflake"
)

const (
	nodeBits = 10
	stepBits = 12
	// MaxNode is the highest node number.
	MaxNode  = 1<<nodeBits - 1
	maxStep  = 1<<stepBits - 1
	timeBits = 63 - nodeBits - stepBits
	maxMilli = 1<<timeBits - 1
)

// Generator hands out strictly increasing ids for one node. The zero value is
// not usable; call New. A Generator is safe for concurrent use and never
// blocks: Next is a compare-and-swap loop.
type Generator struct {
	node int64
	last atomic.Int64 // the last id handed out, or the floor
}

// New returns a Generator for node, which must be 0 to MaxNode.
func New(node int64) (*Generator, error) {
	if node < 0 || node > MaxNode {
		return nil, fmt.Errorf("snowid: node %d is outside 0 to %d", node, MaxNode)
	}
	return &Generator{node: node}, nil
}

// Next returns an id for now: the id that the time alone gives (sequence
// zero) or, if that is not above every id handed out before and the floor,
// the smallest id of this node that is.
func (g *Generator) Next(now time.Time) snowflake.ID {
	t := g.at(now)
	for {
		last := g.last.Load()
		id := max(t, g.after(last))
		if g.last.CompareAndSwap(last, id) {
			return snowflake.ID(id)
		}
	}
}

// SetFloor makes every later id greater than floor. A floor at or below an
// id already handed out changes nothing.
func (g *Generator) SetFloor(floor snowflake.ID) {
	for {
		last := g.last.Load()
		if int64(floor) <= last || g.last.CompareAndSwap(last, int64(floor)) {
			return
		}
	}
}

// at returns the first id of this node in the millisecond of now.
func (g *Generator) at(now time.Time) int64 {
	ms := now.UnixMilli() - snowflake.Epoch
	ms = min(max(ms, 0), maxMilli)
	return ms<<(nodeBits+stepBits) | g.node<<stepBits
}

// after returns the smallest id of this node greater than x.
func (g *Generator) after(x int64) int64 {
	if x < 0 {
		return g.node << stepBits
	}
	ms := x >> (nodeBits + stepBits)
	node := x >> stepBits & MaxNode
	step := x & maxStep
	switch {
	case node < g.node:
		return ms<<(nodeBits+stepBits) | g.node<<stepBits
	case node == g.node && step < maxStep:
		return x + 1
	}
	return (ms+1)<<(nodeBits+stepBits) | g.node<<stepBits
}
