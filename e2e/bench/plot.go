package main

import (
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// plotOutage draws each order's POST→terminal latency against the time it was
// placed, with the outage marked, into a PNG.
func plotOutage(pts []point, killedAt, backAt float64, file string) error {
	p := plot.New()
	p.Title.Text = "Kafka outage: POST→terminal latency of each order"
	p.X.Label.Text = "order placed at (s since start of load)"
	p.Y.Label.Text = "latency (ms, log scale)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	xy := make(plotter.XYs, 0, len(pts))
	for _, q := range pts {
		xy = append(xy, plotter.XY{X: q.x, Y: max(q.y, 1)})
	}
	s, err := plotter.NewScatter(xy)
	if err != nil {
		return err
	}
	s.GlyphStyle.Radius = vg.Points(1.2)
	s.GlyphStyle.Color = color.RGBA{R: 30, G: 90, B: 200, A: 255}
	p.Add(s)
	ymax := 1.0
	for _, q := range xy {
		ymax = max(ymax, q.Y)
	}
	for _, x := range []float64{killedAt, backAt} {
		l, err := plotter.NewLine(plotter.XYs{{X: x, Y: 1}, {X: x, Y: ymax}})
		if err != nil {
			return err
		}
		l.Color = color.RGBA{R: 200, A: 255}
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(l)
	}
	p.Legend.Add("order", s)
	return p.Save(8*vg.Inch, 4*vg.Inch, file)
}
