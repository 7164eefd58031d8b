// goprof profiles itself with runtime/pprof (CPU with a known hot function, heap,
// mutex, block, goroutine) and posts each profile to traced's /ingest exactly the
// way pyroscope-go does: multipart/form-data with a `profile` file part (the
// gzipped pprof) and a `sample_type_config` file part, name=app{labels},
// from/until in nanoseconds, spyName=gospy. Standard library only.
//
//	goprof -url http://127.0.0.1:3200 -app goapp -tags env=e2e   # post
//	goprof -dump DIR                                           # write the pprofs to DIR
//	goprof -url URL -push gopush   # CPU profile as a push.v1 PushRequest (Connect, proto, gzip)
//	goprof -url URL -app goreal -real DIR   # the pyro_real profiles (below), posted and kept in DIR
//	goprof -labeled FILE -lk KEY -lv VALUE  # a short CPU profile whose samples carry the pprof
//	                                        # label KEY=VALUE (any bytes), written to FILE
//
// -real: a CPU profile in which main.hotLeafE2E clearly dominates as the heaviest leaf
// (about 4x main.coldLeafE2E), both run under runtime/pprof.Do with pprof labels: the hot
// part carries span_id=00000000000000a1 worker=hot, the cold part span_id=00000000000000b2
// worker=cold, so its samples carry span_id (span profiles) and a series label; plus heap
// (alloc_*/inuse_*), mutex and block profiles. Each is posted like pyroscope-go and written
// unchanged to DIR/<kind>.pb.gz, so the test computes its expectations from exactly the
// bytes traced received (go tool pprof), never from traced.
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"time"
)

type sampleType struct {
	Units       string `json:"units,omitempty"`
	DisplayName string `json:"display-name,omitempty"`
	Aggregation string `json:"aggregation,omitempty"`
	Cumulative  bool   `json:"cumulative,omitempty"`
	Sampled     bool   `json:"sampled,omitempty"`
}

// The sample_type_config pyroscope-go sends with each kind.
var configs = map[string]map[string]*sampleType{
	"cpu": {
		"cpu": {Units: "samples", Sampled: true},
	},
	"heap": {
		"alloc_objects": {Units: "objects", Cumulative: true},
		"alloc_space":   {Units: "bytes", Cumulative: true},
		"inuse_space":   {Units: "bytes", Aggregation: "average"},
		"inuse_objects": {Units: "objects", Aggregation: "average"},
	},
	"mutex": {
		"contentions": {DisplayName: "mutex_count", Units: "lock_samples", Cumulative: true},
		"delay":       {DisplayName: "mutex_duration", Units: "lock_nanoseconds", Cumulative: true},
	},
	"block": {
		"contentions": {DisplayName: "block_count", Units: "lock_samples", Cumulative: true},
		"delay":       {DisplayName: "block_duration", Units: "lock_nanoseconds", Cumulative: true},
	},
	"goroutine": {
		"goroutine": {DisplayName: "goroutines", Units: "goroutines", Aggregation: "average"},
	},
}

var sink []byte

// hotSpinE2E is the known hot function the test looks for in the CPU profile.
//
//go:noinline
func hotSpinE2E(d time.Duration) uint64 {
	var x uint64 = 1
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		for i := 0; i < 100000; i++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	return x
}

//go:noinline
func allocHeavyE2E() {
	for i := 0; i < 2000; i++ {
		sink = make([]byte, 4096+i)
	}
}

func contendMutexE2E() {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				mu.Lock()
				time.Sleep(50 * time.Microsecond)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

func blockOnChannelE2E() {
	ch := make(chan int)
	go func() {
		for i := 0; i < 50; i++ {
			time.Sleep(200 * time.Microsecond)
			ch <- i
		}
		close(ch)
	}()
	for range ch {
	}
}

// hotLeafE2E / coldLeafE2E: pure arithmetic leaves (no calls inside the inner loop, so
// they are the leaf of nearly every sample taken while they run).
//
//go:noinline
func hotLeafE2E(d time.Duration) uint64 {
	var x uint64 = 3
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		for i := 0; i < 1000000; i++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	return x
}

//go:noinline
func coldLeafE2E(d time.Duration) uint64 {
	var x uint64 = 5
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		for i := 0; i < 1000000; i++ {
			x = x*2862933555777941757 + 3037000493
		}
	}
	return x
}

var usink uint64

func collectReal() (map[string][]byte, time.Time, time.Time) {
	runtime.MemProfileRate = 512
	runtime.SetMutexProfileFraction(1)
	runtime.SetBlockProfileRate(1)
	from := time.Now()
	out := map[string][]byte{}

	var cpu bytes.Buffer
	if err := pprof.StartCPUProfile(&cpu); err != nil {
		fail("cpu profile: %v", err)
	}
	ctx := context.Background()
	pprof.Do(ctx, pprof.Labels("span_id", "00000000000000a1", "worker", "hot"), func(context.Context) {
		usink += hotLeafE2E(1000 * time.Millisecond)
	})
	pprof.Do(ctx, pprof.Labels("span_id", "00000000000000b2", "worker", "cold"), func(context.Context) {
		usink += coldLeafE2E(250 * time.Millisecond)
	})
	pprof.StopCPUProfile()
	out["cpu"] = cpu.Bytes()

	allocHeavyE2E()
	contendMutexE2E()
	blockOnChannelE2E()
	runtime.GC()
	for _, kind := range []string{"heap", "mutex", "block"} {
		var b bytes.Buffer
		if err := pprof.Lookup(kind).WriteTo(&b, 0); err != nil {
			fail("%s profile: %v", kind, err)
		}
		out[kind] = b.Bytes()
	}
	return out, from, time.Now()
}

func collect() (map[string][]byte, time.Time, time.Time) {
	runtime.MemProfileRate = 512
	runtime.SetMutexProfileFraction(1)
	runtime.SetBlockProfileRate(1)
	from := time.Now()
	out := map[string][]byte{}

	var cpu bytes.Buffer
	if err := pprof.StartCPUProfile(&cpu); err != nil {
		fail("cpu profile: %v", err)
	}
	hotSpinE2E(1500 * time.Millisecond)
	pprof.StopCPUProfile()
	out["cpu"] = cpu.Bytes()

	allocHeavyE2E()
	contendMutexE2E()
	blockOnChannelE2E()
	runtime.GC()
	for _, kind := range []string{"heap", "mutex", "block", "goroutine"} {
		var b bytes.Buffer
		if err := pprof.Lookup(kind).WriteTo(&b, 0); err != nil {
			fail("%s profile: %v", kind, err)
		}
		out[kind] = b.Bytes()
	}
	return out, from, time.Now()
}

func post(base, name, kind string, prof []byte, from, until time.Time) error {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, err := mw.CreateFormFile("profile", "profile.pprof")
	if err != nil {
		return err
	}
	fw.Write(prof)
	fw, err = mw.CreateFormFile("sample_type_config", "sample_type_config.json")
	if err != nil {
		return err
	}
	json.NewEncoder(fw).Encode(configs[kind])
	mw.Close()

	q := url.Values{}
	q.Set("name", name)
	q.Set("from", fmt.Sprint(from.UnixNano()))
	q.Set("until", fmt.Sprint(until.UnixNano()))
	q.Set("spyName", "gospy")
	q.Set("sampleRate", "100")
	q.Set("units", "samples")
	q.Set("aggregationType", "sum")
	req, err := http.NewRequest("POST", base+"/ingest?"+q.Encode(), &body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: HTTP %d: %s", kind, resp.StatusCode, msg)
	}
	return nil
}

// Protobuf encoding by hand (the standard library has none): varints and
// length-delimited fields are all a PushRequest needs.
func pbVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func pbBytes(b []byte, field int, p []byte) []byte {
	b = pbVarint(b, uint64(field)<<3|2)
	b = pbVarint(b, uint64(len(p)))
	return append(b, p...)
}

// pushProto sends prof as push.v1.PushRequest{series: [{labels, samples: [{raw_profile, ID}]}]}
// over Connect unary with Content-Type application/proto and a gzipped body, like Alloy.
func pushProto(base, service string, prof []byte) error {
	var series []byte
	for _, kv := range [][2]string{{"__name__", "process_cpu"}, {"service_name", service}, {"env", "e2e"}} {
		series = pbBytes(series, 1, pbBytes(pbBytes(nil, 1, []byte(kv[0])), 2, []byte(kv[1])))
	}
	sample := pbBytes(pbBytes(nil, 1, prof), 2, []byte("6f0a3e0e-0000-4000-8000-000000000001"))
	series = pbBytes(series, 2, sample)
	req := pbBytes(nil, 1, series)
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(req)
	zw.Close()
	hr, err := http.NewRequest("POST", base+"/push.v1.PusherService/Push", &z)
	if err != nil {
		return err
	}
	hr.Header.Set("Content-Type", "application/proto")
	hr.Header.Set("Content-Encoding", "gzip")
	hr.Header.Set("Connect-Protocol-Version", "1")
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || len(msg) != 0 || resp.Header.Get("Content-Type") != "application/proto" {
		return fmt.Errorf("push: HTTP %d %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), msg)
	}
	return nil
}

func fail(f string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "goprof: "+f+"\n", a...)
	os.Exit(1)
}

func main() {
	base := flag.String("url", "", "traced query port base URL")
	app := flag.String("app", "goapp", "application name")
	tags := flag.String("tags", "", "labels k=v,k2=v2")
	dump := flag.String("dump", "", "write the profiles to this directory instead of posting")
	push := flag.String("push", "", "send the CPU profile with push.v1 as this service instead")
	real := flag.String("real", "", "post the pyro_real profiles and write them to this directory")
	labeled := flag.String("labeled", "", "write a CPU profile labelled -lk=-lv to this file")
	lk := flag.String("lk", "k", "pprof label key for -labeled")
	lv := flag.String("lv", "v", "pprof label value for -labeled")
	flag.Parse()

	if *labeled != "" {
		var cpu bytes.Buffer
		if err := pprof.StartCPUProfile(&cpu); err != nil {
			fail("cpu profile: %v", err)
		}
		pprof.Do(context.Background(), pprof.Labels(*lk, *lv), func(context.Context) {
			usink += hotLeafE2E(150 * time.Millisecond)
		})
		pprof.StopCPUProfile()
		if err := os.WriteFile(*labeled, cpu.Bytes(), 0o644); err != nil {
			fail("%v", err)
		}
		return
	}

	if *real != "" {
		profs, from, until := collectReal()
		name := *app + "{" + *tags + "}"
		for _, kind := range []string{"cpu", "heap", "mutex", "block"} {
			if err := os.WriteFile(filepath.Join(*real, kind+".pb.gz"), profs[kind], 0o644); err != nil {
				fail("%v", err)
			}
			if *base == "" {
				continue
			}
			if err := post(*base, name, kind, profs[kind], from, until); err != nil {
				fail("%v", err)
			}
		}
		fmt.Printf("from_ns=%d until_ns=%d\n", from.UnixNano(), until.UnixNano())
		return
	}

	profs, from, until := collect()
	if *dump != "" {
		for kind, p := range profs {
			if err := os.WriteFile(filepath.Join(*dump, "go_"+kind+".pb.gz"), p, 0o644); err != nil {
				fail("%v", err)
			}
		}
		return
	}
	if *push != "" {
		if err := pushProto(*base, *push, profs["cpu"]); err != nil {
			fail("%v", err)
		}
		fmt.Println("pushed 1 profile")
		return
	}
	name := *app + "{" + *tags + "}"
	for _, kind := range []string{"cpu", "heap", "mutex", "block", "goroutine"} {
		if err := post(*base, name, kind, profs[kind], from, until); err != nil {
			fail("%v", err)
		}
	}
	fmt.Println("posted 5 profiles")
}
