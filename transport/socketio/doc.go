// Package socketio serves Plaza to Socket.IO clients.
package socketio
