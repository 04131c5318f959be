package main

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/collections"
	"github.com/plazahq/plaza/transport/network/jwtauth"
)

// maxBodyBytes caps a request body; a record must also fit in an event
// (pubsub.MaxPayloadBytes).
const maxBodyBytes = pubsub.MaxPayloadBytes

// api serves the REST routes.
type api struct {
	store *Store
	v     *jwtauth.Verifier
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	var perr *pubsub.Error
	if !errors.As(err, &perr) {
		perr = &pubsub.Error{Code: pubsub.CodeInternal, Message: "internal error"}
	}
	status := http.StatusBadRequest
	switch perr.Code {
	case "NOT_FOUND":
		status = http.StatusNotFound
	case pubsub.CodeUnauthenticated:
		status = http.StatusUnauthorized
	case pubsub.CodePermissionDenied:
		status = http.StatusForbidden
	case pubsub.CodePayloadTooLarge:
		status = http.StatusRequestEntityTooLarge
	case pubsub.CodeInternal:
		status = http.StatusInternalServerError
	}
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": string(perr.Code), "message": perr.Message}})
}

// reply writes err if there is one, else v with status.
func reply(w http.ResponseWriter, status int, v any, err error) {
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, status, v)
}

// auth verifies the request's token and that it allows action on the
// collection of the path (the topic of that name in the room
// "collections"): reads ask for pubsub.ActionSubscribe, as the WebSocket
// does, writes for pubsub.ActionPublish. A token whose "topics" claim does
// not list the collection gets 403 PERMISSION_DENIED.
func (a *api) auth(w http.ResponseWriter, r *http.Request, action pubsub.Action) bool {
	tok := r.URL.Query().Get("token")
	if h := r.Header.Get("Authorization"); h != "" {
		tok = strings.TrimSpace(strings.TrimPrefix(h, "Bearer "))
	}
	id, err := a.v.Authenticate(r.Context(), r, tok)
	if err == nil {
		err = a.v.Authorize(r.Context(), id, pubsub.Access{Action: action, Room: collections.DefaultRoom, Topic: r.PathValue("collection"), ClientID: id.ClientID})
	}
	if err != nil {
		writeError(w, err)
		return false
	}
	return true
}

// body reads a JSON object.
func body(w http.ResponseWriter, r *http.Request) (Record, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		return nil, pubsub.Errorf(pubsub.CodePayloadTooLarge, "body is larger than %d bytes", maxBodyBytes)
	}
	var rec Record
	if err := json.Unmarshal(b, &rec); err != nil || rec == nil {
		return nil, pubsub.Errorf(pubsub.CodeInvalidPayload, "body must be a JSON object")
	}
	return rec, nil
}

func (a *api) create(w http.ResponseWriter, r *http.Request) {
	if !a.auth(w, r, pubsub.ActionPublish) {
		return
	}
	fields, err := body(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	rec, err := a.store.Create(r.Context(), r.PathValue("collection"), fields)
	reply(w, http.StatusCreated, rec, err)
}

func (a *api) list(w http.ResponseWriter, r *http.Request) {
	if !a.auth(w, r, pubsub.ActionSubscribe) {
		return
	}
	limit := 100
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, pubsub.Errorf(pubsub.CodeInvalidLimit, "limit must be 1 to 1000"))
			return
		}
		limit = n
	}
	recs, err := a.store.List(r.PathValue("collection"), limit)
	reply(w, http.StatusOK, map[string]any{"items": recs}, err)
}

func (a *api) get(w http.ResponseWriter, r *http.Request) {
	if !a.auth(w, r, pubsub.ActionSubscribe) {
		return
	}
	rec, err := a.store.Get(r.PathValue("collection"), r.PathValue("id"))
	reply(w, http.StatusOK, rec, err)
}

func (a *api) update(w http.ResponseWriter, r *http.Request) {
	if !a.auth(w, r, pubsub.ActionPublish) {
		return
	}
	fields, err := body(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	rec, err := a.store.Update(r.Context(), r.PathValue("collection"), r.PathValue("id"), fields)
	reply(w, http.StatusOK, rec, err)
}

func (a *api) remove(w http.ResponseWriter, r *http.Request) {
	if !a.auth(w, r, pubsub.ActionPublish) {
		return
	}
	rec, err := a.store.Delete(r.Context(), r.PathValue("collection"), r.PathValue("id"))
	reply(w, http.StatusOK, rec, err)
}
