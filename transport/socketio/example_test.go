package socketio_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
	"github.com/plazahq/plaza/transport/socketio"
)

// A backend publishes with POST /publish; a Plaza client of the same hub, in
// the room of the App ID, receives it as Socket.IO clients would.
func ExampleNew() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "plaza-example")
	defer os.RemoveAll(dir)

	hub, _ := memory.New(memory.Options{})
	defer hub.Close()
	reg, err := socketio.OpenRegistry(filepath.Join(dir, "apps.db"), socketio.RegistryOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Close()
	srv, err := socketio.New(hub, reg, socketio.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	ts := httptest.NewServer(srv)
	defer ts.Close()

	_, app, _ := reg.Create(ctx, socketio.AppOptions{Name: "My shop"})

	room, _ := pubsub.Join(ctx, hub, app.AppID, nil)
	defer room.Leave(ctx)
	got := make(chan pubsub.Message, 1)
	room.Subscribe(ctx, "orders.42", func(m pubsub.Message) { got <- m })

	req, _ := http.NewRequest("POST", ts.URL+"/publish",
		strings.NewReader(`{"channel":"orders.42","event":"order.updated","data":{"id":42}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-App-Id", app.AppID)
	req.Header.Set("Authorization", "Bearer "+app.PublishKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status)

	select {
	case m := <-got:
		fmt.Println(m.Topic, m.Metadata["event"], string(m.Payload), m.From)
	case <-time.After(10 * time.Second):
		fmt.Println("the Plaza client received nothing within 10 s")
	}
	// Output:
	// 200 OK
	// orders.42 order.updated {"id":42} publish-api
}
