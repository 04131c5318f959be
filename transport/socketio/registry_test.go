package socketio

import (
	"context"
	"errors"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/plazahq/plaza/internal/fakeclock"
	"github.com/plazahq/plaza/pubsub"
)

// openRegistry opens a registry in a fresh folder, closed when the test ends.
func openRegistry(tb testing.TB) *Registry {
	tb.Helper()
	reg, err := OpenRegistry(filepath.Join(tb.TempDir(), "apps.db"), RegistryOptions{Clock: fakeclock.New(t0)})
	if err != nil {
		tb.Fatalf("OpenRegistry() = %v", err)
	}
	tb.Cleanup(func() { reg.Close() })
	return reg
}

// createApp adds an app to reg and returns its credentials.
func createApp(tb testing.TB, reg *Registry, opts AppOptions) Credentials {
	tb.Helper()
	_, creds, err := reg.Create(context.Background(), opts)
	if err != nil {
		tb.Fatalf("Create(%+v) = %v", opts, err)
	}
	return creds
}

var (
	appIDPattern        = regexp.MustCompile(`^app_[a-z2-7]{16}$`)
	publishKeyPattern   = regexp.MustCompile(`^pk_live_[a-z2-7]{32}$`)
	subscribeKeyPattern = regexp.MustCompile(`^sub_live_[a-z2-7]{32}$`)
)

func TestCreateHandsOutThreeValues(t *testing.T) {
	t.Parallel()
	reg := openRegistry(t)
	app, creds, err := reg.Create(context.Background(), AppOptions{Name: "Shop", PublishPerMinute: 120})
	if err != nil {
		t.Fatal(err)
	}
	if !appIDPattern.MatchString(creds.AppID) || !publishKeyPattern.MatchString(creds.PublishKey) || !subscribeKeyPattern.MatchString(creds.SubscribeKey) {
		t.Errorf("Create() credentials = %+v, want app_…, pk_live_… (160 bits) and sub_live_… (160 bits)", creds)
	}
	if err := pubsub.CheckTopic(creds.AppID); err != nil {
		t.Errorf("App ID %q is not a valid Plaza room name: %v", creds.AppID, err)
	}
	want := App{
		ID: creds.AppID, Name: "Shop", CreatedAt: t0, PublishPerMinute: 120,
		PublishKeyHint:      "pk_live_…" + creds.PublishKey[len(creds.PublishKey)-4:],
		SubscribeKeyHint:    "sub_live_…" + creds.SubscribeKey[len(creds.SubscribeKey)-4:],
		PublishKeyCreatedAt: t0, SubscribeKeyCreatedAt: t0,
	}
	if diff := cmp.Diff(want, app); diff != "" {
		t.Errorf("Create() app (-want +got):\n%s", diff)
	}
	other := createApp(t, reg, AppOptions{})
	if other.AppID == creds.AppID || other.PublishKey == creds.PublishKey || other.SubscribeKey == creds.SubscribeKey {
		t.Errorf("two apps share a value: %+v and %+v", creds, other)
	}
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	reg := openRegistry(t)
	a := createApp(t, reg, AppOptions{Name: "a"})
	b := createApp(t, reg, AppOptions{Name: "b"})
	tests := []struct {
		name     string
		app, key string
		want     KeyKind
		wantErr  error
	}{
		{"publish key", a.AppID, a.PublishKey, KeyPublish, nil},
		{"subscribe key", a.AppID, a.SubscribeKey, KeySubscribe, nil},
		{"another app's publish key", a.AppID, b.PublishKey, "", ErrWrongKey},
		{"another app's subscribe key", a.AppID, b.SubscribeKey, "", ErrWrongKey},
		{"made-up key", a.AppID, "pk_live_nope", "", ErrWrongKey},
		{"empty key", a.AppID, "", "", ErrWrongKey},
		{"unknown app", "app_doesnotexist", a.PublishKey, "", ErrUnknownApp},
		{"no app", "", a.PublishKey, "", ErrUnknownApp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app, kind, err := reg.Authenticate(tt.app, tt.key)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !errors.Is(err, pubsub.ErrUnauthenticated) {
					t.Errorf("Authenticate() = %v, want %v as UNAUTHENTICATED", err, tt.wantErr)
				}
				return
			}
			if err != nil || kind != tt.want || app.ID != tt.app {
				t.Errorf("Authenticate() = %q, %q, %v; want %q, %q", app.ID, kind, err, tt.app, tt.want)
			}
		})
	}
}

func TestRotateRefusesTheOldKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg := openRegistry(t)
	old := createApp(t, reg, AppOptions{})
	for _, kind := range []KeyKind{KeyPublish, KeySubscribe} {
		t.Run(string(kind), func(t *testing.T) {
			creds, err := reg.Rotate(ctx, old.AppID, kind)
			if err != nil {
				t.Fatalf("Rotate(%q) = %v", kind, err)
			}
			oldKey, newKey, otherKey := old.PublishKey, creds.PublishKey, old.SubscribeKey
			if kind == KeySubscribe {
				oldKey, newKey, otherKey = old.SubscribeKey, creds.SubscribeKey, ""
			}
			if newKey == "" || newKey == oldKey {
				t.Fatalf("Rotate(%q) = %+v, want a new %s key", kind, creds, kind)
			}
			if _, _, err := reg.Authenticate(old.AppID, oldKey); !errors.Is(err, ErrWrongKey) {
				t.Errorf("Authenticate(old %s key) = %v, want ErrWrongKey", kind, err)
			}
			if _, got, err := reg.Authenticate(old.AppID, newKey); err != nil || got != kind {
				t.Errorf("Authenticate(new %s key) = %q, %v", kind, got, err)
			}
			if otherKey != "" {
				if _, got, err := reg.Authenticate(old.AppID, otherKey); err != nil || got != KeySubscribe {
					t.Errorf("Authenticate(subscribe key) after rotating the publish key = %q, %v; want it unchanged", got, err)
				}
			}
		})
	}
	if _, err := reg.Rotate(ctx, old.AppID, "admin"); !errors.Is(err, pubsub.ErrInvalidRequest) {
		t.Errorf("Rotate(admin) = %v, want INVALID_REQUEST", err)
	}
	if _, err := reg.Rotate(ctx, "app_nope", KeyPublish); !errors.Is(err, ErrUnknownApp) {
		t.Errorf("Rotate(unknown app) = %v, want ErrUnknownApp", err)
	}
}

func TestDelete(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg := openRegistry(t)
	a := createApp(t, reg, AppOptions{Name: "a"})
	b := createApp(t, reg, AppOptions{Name: "b"})
	if err := reg.Delete(ctx, a.AppID); err != nil {
		t.Fatalf("Delete() = %v", err)
	}
	if _, _, err := reg.Authenticate(a.AppID, a.PublishKey); !errors.Is(err, ErrUnknownApp) {
		t.Errorf("Authenticate() after Delete = %v, want ErrUnknownApp", err)
	}
	if err := reg.Delete(ctx, a.AppID); !errors.Is(err, ErrUnknownApp) {
		t.Errorf("second Delete() = %v, want ErrUnknownApp", err)
	}
	apps, err := reg.List(ctx)
	if err != nil || len(apps) != 1 || apps[0].ID != b.AppID {
		t.Errorf("List() after deleting a = %+v, %v; want only %s", apps, err, b.AppID)
	}
}

func TestRegistrySurvivesRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "apps.db")
	reg, err := OpenRegistry(path, RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a := createApp(t, reg, AppOptions{Name: "kept"})
	gone := createApp(t, reg, AppOptions{Name: "deleted"})
	rotated, err := reg.Rotate(ctx, a.AppID, KeySubscribe)
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Delete(ctx, gone.AppID); err != nil {
		t.Fatal(err)
	}
	if err := reg.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}

	reg, err = OpenRegistry(path, RegistryOptions{})
	if err != nil {
		t.Fatalf("OpenRegistry() again = %v", err)
	}
	defer reg.Close()
	apps, err := reg.List(ctx)
	if err != nil || len(apps) != 1 || apps[0].ID != a.AppID || apps[0].Name != "kept" {
		t.Fatalf("List() after a restart = %+v, %v; want the app %s", apps, err, a.AppID)
	}
	checks := []struct {
		key  string
		want error
	}{{a.PublishKey, nil}, {rotated.SubscribeKey, nil}, {a.SubscribeKey, ErrWrongKey}}
	for _, c := range checks {
		if _, _, err := reg.Authenticate(a.AppID, c.key); !errors.Is(err, c.want) {
			t.Errorf("Authenticate(%s…) after a restart = %v, want %v", c.key[:9], err, c.want)
		}
	}
	if _, _, err := reg.Authenticate(gone.AppID, gone.PublishKey); !errors.Is(err, ErrUnknownApp) {
		t.Errorf("Authenticate(deleted app) after a restart = %v, want ErrUnknownApp", err)
	}
}

func TestRegistryStoresNoKey(t *testing.T) {
	t.Parallel()
	reg := openRegistry(t)
	creds := createApp(t, reg, AppOptions{})
	path := reg.db.Path()
	reg.Close()
	raw := readFile(t, path)
	for _, key := range []string{creds.PublishKey, creds.SubscribeKey} {
		if strings.Contains(raw, key) || strings.Contains(raw, key[len(key)-12:]) {
			t.Errorf("the registry file holds the key %s… in clear", key[:12])
		}
	}
}

func TestOpenRegistryInUse(t *testing.T) {
	t.Parallel()
	reg := openRegistry(t)
	_, err := OpenRegistry(reg.db.Path(), RegistryOptions{OpenTimeout: 50 * time.Millisecond})
	if !errors.Is(err, ErrInUse) {
		t.Errorf("OpenRegistry(a file in use) = %v, want ErrInUse", err)
	}
}

func TestCreateChecksTheName(t *testing.T) {
	t.Parallel()
	reg := openRegistry(t)
	for _, name := range []string{strings.Repeat("x", MaxAppNameLen+1), "tab\there", "\xff"} {
		if _, _, err := reg.Create(context.Background(), AppOptions{Name: name}); !errors.Is(err, pubsub.ErrInvalidRequest) {
			t.Errorf("Create(name %q) = %v, want INVALID_REQUEST", name, err)
		}
	}
}

func TestRegistryHonoursContext(t *testing.T) {
	t.Parallel()
	reg := openRegistry(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := reg.Create(ctx, AppOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Create(canceled) = %v, want context.Canceled", err)
	}
	if _, err := reg.List(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("List(canceled) = %v, want context.Canceled", err)
	}
}
