module github.com/plazahq/plaza/transport/network/jwtauth

go 1.25.0

require (
	github.com/MicahParks/keyfunc/v3 v3.9.2
	github.com/golang-jwt/jwt/v5 v5.3.1
	github.com/plazahq/plaza v0.0.0
	go.uber.org/goleak v1.3.0
)

require (
	github.com/MicahParks/jwkset v0.11.4 // indirect
	github.com/bwmarrin/snowflake v0.3.0 // indirect
	github.com/coder/websocket v1.8.15 // indirect
	go.etcd.io/bbolt v1.5.0 // indirect
	golang.org/x/sys v0.45.0 // indirect
	golang.org/x/time v0.15.0 // indirect
)

replace github.com/plazahq/plaza => ../../..
