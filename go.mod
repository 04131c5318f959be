module github.com/plazahq/plaza

go 1.25.0

require (
	github.com/bwmarrin/snowflake v0.3.0
	github.com/coder/websocket v1.8.15
	github.com/google/go-cmp v0.7.0
	go.etcd.io/bbolt v1.5.0
	go.uber.org/goleak v1.3.0
	golang.org/x/time v0.15.0
)

require golang.org/x/sys v0.45.0 // indirect
