module github.com/plazahq/plaza/transport/socketio

go 1.26.0

require (
	github.com/google/go-cmp v0.7.0
	github.com/plazahq/plaza v0.0.0
	go.etcd.io/bbolt v1.5.0
	go.uber.org/goleak v1.3.0
)

require (
	github.com/bwmarrin/snowflake v0.3.0 // indirect
	github.com/stretchr/testify v1.12.1 // indirect
	golang.org/x/sync v0.23.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
	golang.org/x/time v0.15.0 // indirect
)

replace github.com/plazahq/plaza => ../..
