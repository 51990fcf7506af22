//go:build race

package ratelimit

// raceDetector is true when the tests run with -race, which makes the flood tests
// some twenty times slower; they then send fewer keys, still many times the bound.
const raceDetector = true
