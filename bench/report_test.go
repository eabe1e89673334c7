package main

import "testing"

// A noisy minute that slows both targets of one round must not move the
// ratio: the ratio pairs runs of the same round. The ratio of the medians
// would be 900/1000 here, the slow round of one target meeting a fast one
// of the other.
func TestRatioPairsRounds(t *testing.T) {
	c := cell{"prepared", 8}
	r := results{
		key{mandateName, c}:   {{TPS: 900}, {TPS: 920}, {TPS: 460}},
		key{pgbouncerName, c}: {{TPS: 1000}, {TPS: 1000}, {TPS: 500}},
	}
	if got := r.ratio(mandateName, pgbouncerName, c); got != 0.92 {
		t.Errorf("ratio = %v, want 0.92 (the median of 0.9, 0.92 and 0.92)", got)
	}
}

func TestAddedLatencyPairsRounds(t *testing.T) {
	c := cell{"simple", 1}
	r := results{
		key{mandateName, c}: {{LatencyMS: 0.20}, {LatencyMS: 0.50}, {LatencyMS: 0.21}},
		key{directName, c}:  {{LatencyMS: 0.16}, {LatencyMS: 0.46}, {LatencyMS: 0.17}},
	}
	if got := r.addedLatency(mandateName, c); got < 0.0399 || got > 0.0401 {
		t.Errorf("added latency = %v, want 0.04", got)
	}
}
