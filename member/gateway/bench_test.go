package gateway

import (
	"io"
	"net/http"
	"slices"
	"testing"
	"time"
)

// BenchmarkOverhead measures, in one run on loopback, small GETs sent
// straight to a replica and the same through the gateway: ns/op is the
// gateway's throughput (parallel clients), and the reported p50s are of
// one client's serial requests, direct and through the gateway.
//
//	go test ./member/gateway -run '^$' -bench Overhead -benchtime 20000x -cpu 1,2
func BenchmarkOverhead(b *testing.B) {
	be := newBackend(b, "be")
	g := startGateway(b, "us")
	g.Update(table(1, web(nil, be.endpoint("us-1", "us"))))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	direct, via := be.srv.URL+"/", "http://"+g.Addr()+"/svc/web/"
	do := func(url string) {
		resp, err := client.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	p50 := func(url string, n int) time.Duration {
		lat := make([]time.Duration, n)
		for i := range lat {
			t := time.Now()
			do(url)
			lat[i] = time.Since(t)
		}
		slices.Sort(lat)
		return lat[n/2]
	}
	p50(direct, 200)
	p50(via, 200) // warm both
	d, v := p50(direct, 2000), p50(via, 2000)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			do(via)
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(d.Microseconds()), "direct-p50-µs")
	b.ReportMetric(float64(v.Microseconds()), "gateway-p50-µs")
	b.ReportMetric(float64((v - d).Microseconds()), "added-p50-µs")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}
