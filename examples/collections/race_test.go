//go:build race

package main

// raceEnabled: the race detector slows the 200-client test down about
// tenfold, so it runs fewer writes.
const raceEnabled = true
