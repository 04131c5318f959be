package memory

import "github.com/plazahq/plaza/pubsub"

// SetAfterCommit makes h call f with every persisted message once the store
// has committed it, before the publish is fanned out and answered, so that
// a test can crash the process in between. Call it before h is used.
func SetAfterCommit(h *Hub, f func(*pubsub.Message)) { h.afterCommit = f }

// pumping reports whether c's backlog is still being handed over.
func (c *conn) pumping() bool { return c.q.pumping.Load() }
