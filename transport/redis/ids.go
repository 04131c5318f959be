package redis

import "github.com/plazahq/plaza/pubsub"

// The snowflake layout (package internal/snowid): 41 bits of milliseconds,
// 10 of node and 12 of sequence.
const (
	idNodeBits = 10
	idStepBits = 12
	idMaxNode  = 1<<idNodeBits - 1
	idMaxStep  = 1<<idStepBits - 1
	idMaxMilli = 1<<(63-idNodeBits-idStepBits) - 1
)

// raiseID returns the smallest id above last whose node bits are those of
// proposed, so that an id raised above a topic's last id still belongs to
// the node that proposed it and cannot be one that another node's
// generator hands out: with last's node below, the same millisecond and
// sequence 0; with the same node, last+1, into the next millisecond when
// the sequence wraps; with last's node above, the next millisecond and
// sequence 0. ok is false when no such id fits in 63 bits.
func raiseID(last, proposed pubsub.ID) (id pubsub.ID, ok bool) {
	x := uint64(last)
	node := uint64(proposed) >> idStepBits & idMaxNode
	ms := x >> (idNodeBits + idStepBits)
	lnode := x >> idStepBits & idMaxNode
	step := x & idMaxStep
	switch {
	case lnode < node:
		// same millisecond, this node, sequence 0
	case lnode == node && step < idMaxStep:
		return pubsub.ID(x + 1), true
	default:
		ms++
	}
	if ms > idMaxMilli {
		return 0, false
	}
	return pubsub.ID(ms<<(idNodeBits+idStepBits) | node<<idStepBits), true
}
