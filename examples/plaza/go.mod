module github.com/plazahq/plaza/examples/plaza

go 1.25.0

require (
	github.com/creack/pty v1.1.24
	github.com/plazahq/plaza v0.0.0
	go.uber.org/goleak v1.3.0
)

require (
	github.com/bwmarrin/snowflake v0.3.0 // indirect
	github.com/coder/websocket v1.8.15 // indirect
	golang.org/x/time v0.15.0 // indirect
)

replace github.com/plazahq/plaza => ../..
