module github.com/plazahq/plaza/examples/server

go 1.26.0

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/VictoriaMetrics/metrics v1.45.0
	github.com/coder/websocket v1.8.15
	github.com/google/go-cmp v0.7.0
	github.com/plazahq/plaza v0.0.0
	github.com/plazahq/plaza/transport/redis v0.0.0
	github.com/prometheus/client_model v0.6.3
	github.com/prometheus/common v0.70.0
	go.uber.org/goleak v1.3.0
)

require (
	github.com/bwmarrin/snowflake v0.3.0 // indirect
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/redis/rueidis v1.0.79 // indirect
	github.com/stretchr/testify v1.12.1 // indirect
	github.com/valyala/fastrand v1.1.0 // indirect
	github.com/valyala/histogram v1.2.0 // indirect
	go.etcd.io/bbolt v1.5.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/time v0.15.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)

replace github.com/plazahq/plaza => ../..

replace github.com/plazahq/plaza/transport/redis => ../../transport/redis
