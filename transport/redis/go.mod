module github.com/plazahq/plaza/transport/redis

go 1.25.0

require (
	github.com/google/go-cmp v0.7.0
	github.com/plazahq/plaza v0.0.0
	github.com/redis/rueidis v1.0.79
	go.uber.org/goleak v1.3.0
)

require (
	github.com/bwmarrin/snowflake v0.3.0 // indirect
	github.com/coder/websocket v1.8.15 // indirect
	go.etcd.io/bbolt v1.5.0 // indirect
	golang.org/x/sys v0.47.0 // indirect
	golang.org/x/time v0.15.0 // indirect
)

replace github.com/plazahq/plaza => ../..
