package socketio

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/plazahq/plaza/pubsub"
)

const testAdminKey = "admin-key-for-the-tests"

// adminCall sends one admin request and decodes the answer.
func adminCall(tb testing.TB, base, key, method, path, body string) (int, answer) {
	tb.Helper()
	req, _ := http.NewRequestWithContext(ctxT(tb), method, base+path, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var a answer
	if err := json.Unmarshal(raw, &a); err != nil {
		tb.Fatalf("%s %s answered %d %q, not JSON", method, path, resp.StatusCode, raw)
	}
	a.raw = string(raw)
	return resp.StatusCode, a
}

func TestAdminAPI(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	h, err := NewAdmin(f.reg, AdminOptions{Key: testAdminKey})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/admin/", http.StripPrefix("/admin", h))
	ts := httptest.NewServer(mux)
	defer ts.Close()
	call := func(method, path, body string) (int, answer) {
		t.Helper()
		return adminCall(t, ts.URL, testAdminKey, method, path, body)
	}

	status, a := call("POST", "/admin/apps", `{"name":"Shop","publishPerMinute":30}`)
	var created createdApp
	if status != http.StatusCreated || json.Unmarshal(a.Data, &created) != nil {
		t.Fatalf("POST /admin/apps = %d %s, want 201", status, a.raw)
	}
	if !appIDPattern.MatchString(created.ID) || !publishKeyPattern.MatchString(created.PublishKey) || !subscribeKeyPattern.MatchString(created.SubscribeKey) || created.Name != "Shop" || created.PublishPerMinute != 30 {
		t.Errorf("created %+v", created)
	}
	// The three values work as they are.
	f.mustPublish(t, Credentials{AppID: created.ID, PublishKey: created.PublishKey}, seedBody)
	if perr := f.srv.checkSubscriber(created.ID, created.SubscribeKey); perr != nil {
		t.Errorf("the created subscribe key: %v", perr)
	}

	status, a = call("GET", "/admin/apps", "")
	if status != 200 || !strings.Contains(a.raw, created.ID) || strings.Contains(a.raw, created.PublishKey) || strings.Contains(a.raw, created.SubscribeKey) {
		t.Errorf("GET /admin/apps = %d %s; want the app without its keys", status, a.raw)
	}
	status, a = call("GET", "/admin/apps/"+created.ID, "")
	if status != 200 || !strings.Contains(a.raw, `"name":"Shop"`) {
		t.Errorf("GET /admin/apps/{id} = %d %s", status, a.raw)
	}

	status, a = call("POST", "/admin/apps/"+created.ID+"/rotate", `{"key":"publish"}`)
	var rotated Credentials
	if status != 200 || json.Unmarshal(a.Data, &rotated) != nil || !publishKeyPattern.MatchString(rotated.PublishKey) || rotated.SubscribeKey != "" {
		t.Fatalf("rotate = %d %s", status, a.raw)
	}
	if status, _, _ := f.publish(t, created.ID, created.PublishKey, seedBody); status != http.StatusUnauthorized {
		t.Errorf("publish with the rotated key = %d, want 401", status)
	}
	f.mustPublish(t, Credentials{AppID: created.ID, PublishKey: rotated.PublishKey}, seedBody)

	for _, bad := range []struct{ method, path, body string }{
		{"POST", "/admin/apps/" + created.ID + "/rotate", `{"key":"admin"}`},
		{"POST", "/admin/apps/" + created.ID + "/rotate", `{"kind":"publish"}`},
		{"POST", "/admin/apps", `{"name":"x\u0000y"}`},
		{"POST", "/admin/apps", `[`},
	} {
		if status, a := call(bad.method, bad.path, bad.body); status != http.StatusBadRequest || a.Error == nil || a.Error.Code != pubsub.CodeInvalidRequest {
			t.Errorf("%s %s %s = %d %s, want 400 INVALID_REQUEST", bad.method, bad.path, bad.body, status, a.raw)
		}
	}

	if status, a := call("DELETE", "/admin/apps/"+created.ID, ""); status != 200 || !strings.Contains(a.raw, `"deleted":true`) {
		t.Errorf("DELETE = %d %s", status, a.raw)
	}
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/admin/apps/" + created.ID, ""},
		{"DELETE", "/admin/apps/" + created.ID, ""},
		{"POST", "/admin/apps/" + created.ID + "/rotate", `{"key":"subscribe"}`},
		{"GET", "/admin/nowhere", ""},
	} {
		if status, a := call(r.method, r.path, r.body); status != http.StatusNotFound || a.Error == nil || a.Error.Code != codeNotFound {
			t.Errorf("%s %s after delete = %d %s, want 404 NOT_FOUND", r.method, r.path, status, a.raw)
		}
	}
	if status, _, _ := f.publish(t, created.ID, rotated.PublishKey, seedBody); status != http.StatusUnauthorized {
		t.Errorf("publish to a deleted app = %d, want 401", status)
	}
}

func TestAdminNeedsTheKey(t *testing.T) {
	t.Parallel()
	reg := openRegistry(t)
	h, err := NewAdmin(reg, AdminOptions{Key: testAdminKey})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(h)
	defer ts.Close()
	for _, key := range []string{"", "wrong", testAdminKey + "x", createApp(t, reg, AppOptions{}).PublishKey} {
		for _, r := range []struct{ method, path string }{{"GET", "/apps"}, {"POST", "/apps"}, {"DELETE", "/apps/x"}} {
			if status, a := adminCall(t, ts.URL, key, r.method, r.path, ""); status != http.StatusUnauthorized || a.Error == nil || a.Error.Code != pubsub.CodeUnauthenticated {
				t.Errorf("%s %s with key %q = %d %s, want 401", r.method, r.path, key, status, a.raw)
			}
		}
	}
	apps, _ := reg.List(ctxT(t))
	if len(apps) != 1 {
		t.Errorf("%d apps after refused requests, want the one created directly", len(apps))
	}
	if _, err := NewAdmin(reg, AdminOptions{Key: "short"}); err == nil {
		t.Error("NewAdmin(a short key) = nil error")
	}
}
