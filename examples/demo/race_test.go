//go:build race

package main

// raceEnabled builds the gateway under test with the race detector when the test
// itself runs with it.
const raceEnabled = true
