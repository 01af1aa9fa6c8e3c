package main

import (
	"bytes"
	"testing"

	"github.com/google/pprof/profile"
)

// TestTopCumulative: a function counts once per sample, however often it
// recurs in the stack, and the list is ordered by share.
func TestTopCumulative(t *testing.T) {
	fn := func(id uint64, name string) *profile.Function { return &profile.Function{ID: id, Name: name} }
	main, encode, recurse := fn(1, "main.main"), fn(2, "encoding/json.Marshal"), fn(3, "main.walk")
	loc := func(id uint64, f *profile.Function) *profile.Location {
		return &profile.Location{ID: id, Line: []profile.Line{{Function: f}}}
	}
	lMain, lEncode, lWalk1, lWalk2 := loc(1, main), loc(2, encode), loc(3, recurse), loc(4, recurse)
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		Function:   []*profile.Function{main, encode, recurse},
		Location:   []*profile.Location{lMain, lEncode, lWalk1, lWalk2},
		Sample: []*profile.Sample{
			{Location: []*profile.Location{lEncode, lMain}, Value: []int64{1, 30e6}},
			{Location: []*profile.Location{lWalk1, lWalk2, lMain}, Value: []int64{1, 10e6}},
		},
	}
	var buf bytes.Buffer
	if err := p.Write(&buf); err != nil {
		t.Fatal(err)
	}
	got, err := topCumulative(buf.Bytes(), 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []FuncCost{{"main.main", 1}, {"encoding/json.Marshal", 0.75}, {"main.walk", 0.25}}
	if got.CPUMsPerOrder != 40 || len(got.Top) != len(want) {
		t.Fatalf("topCumulative = %+v, want 40 ms and %v", got, want)
	}
	for i := range want {
		if got.Top[i] != want[i] {
			t.Fatalf("Top[%d] = %v, want %v", i, got.Top[i], want[i])
		}
	}
}
