package pubsub

import "strconv"

// ConnState is the state of a Room's connection, as JoinOptions.OnState
// reports it.
type ConnState int

// The states, in the order a Room goes through them: Connected once, then
// Disconnected and Reconnected as often as the connection is lost and
// replaced, and Stopped at most once, when the hub refuses the Room for good.
// Leave reports nothing.
const (
	// StateConnected: the Room's first connection is up. It is the first
	// change OnState sees, before any handler runs.
	StateConnected ConnState = iota + 1
	// StateDisconnected: the connection was lost; StateChange.Err says why.
	// The handlers have received everything that arrived before the loss.
	// The Room reconnects on its own, with backoff (JoinOptions.ReconnectMin
	// and ReconnectMax).
	StateDisconnected
	// StateReconnected: a new connection is up and subscribed to every
	// topic again; with GapFill, the gap has been filled.
	// StateChange.Recovered says whether the handlers missed nothing.
	StateReconnected
	// StateStopped: the hub refused the Room on reconnect (UNAUTHENTICATED
	// or PERMISSION_DENIED, in StateChange.Err and Room.Err). The Room no
	// longer reconnects; its calls fail with NOT_CONNECTED.
	StateStopped
)

func (s ConnState) String() string {
	switch s {
	case StateConnected:
		return "connected"
	case StateDisconnected:
		return "disconnected"
	case StateReconnected:
		return "reconnected"
	case StateStopped:
		return "stopped"
	}
	return "ConnState(" + strconv.Itoa(int(s)) + ")"
}

// StateChange is one change of a Room's connection, as JoinOptions.OnState
// receives it. The zero value is no change.
type StateChange struct {
	State ConnState

	// Err is why: for StateDisconnected, the lost connection's error (an
	// *Error: SLOW_CONSUMER when the hub dropped the Room for falling too
	// far behind, NETWORK_ERROR when the connection failed or the hub went
	// away); for StateStopped, the hub's refusal. Nil for the other states.
	Err error

	// Recovered, for StateReconnected, reports whether the handlers missed
	// nothing while the Room was away, as Centrifuge's "recovered" and
	// Ably's "resumed" do: GapFill is on, every subscription was made
	// again, the Room has no pattern subscription (patterns are not
	// gap-filled), and every topic's history was read to its end, without
	// error, from the last message the Room had seen. False means
	// continuity broke: messages published meanwhile may be missing, and
	// the application should reload what it shows (GetHistory). Either
	// way, messages published with Persist(false) while the Room was away,
	// and persisted ones that history no longer keeps, are not delivered.
	Recovered bool
}
