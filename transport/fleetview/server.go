package fleetview

import (
	_ "embed"
	"encoding/json"
	"net/http"
	"time"
)

//go:embed index.html
var page []byte

// Handler serves the page, its JSON and the event stream:
//
//	GET /                 the fleet table and timeline
//	GET /gateway/{id}     one gateway's page
//	GET /api/fleet        a snapshot Message
//	GET /api/gateway/{id} a Detail
//	GET /events           text/event-stream: a snapshot, then updates
func (v *View) Handler() http.Handler {
	mux := http.NewServeMux()
	servePage := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		// Everything is inline: nothing to load from elsewhere.
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:")
		_, _ = w.Write(page)
	}
	mux.HandleFunc("GET /{$}", servePage)
	mux.HandleFunc("GET /gateway/{id}", servePage)
	mux.HandleFunc("GET /api/fleet", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, v.Snapshot())
	})
	mux.HandleFunc("GET /api/gateway/{id}", func(w http.ResponseWriter, r *http.Request) {
		d, ok := v.Gateway(r.PathValue("id"))
		if !ok {
			http.Error(w, "no such gateway", http.StatusNotFound)
			return
		}
		writeJSON(w, d)
	})
	mux.HandleFunc("GET /events", v.stream)
	return mux
}

func writeJSON(w http.ResponseWriter, x any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(x)
}

func (v *View) stream(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	snap, ch, err := v.subscribe()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer v.unsubscribe(ch)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	send := func(kind string, b []byte) bool {
		if _, err := w.Write([]byte("event: " + kind + "\ndata: ")); err != nil {
			return false
		}
		if _, err := w.Write(b); err != nil {
			return false
		}
		if _, err := w.Write([]byte("\n\n")); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send("snapshot", snap) {
		return
	}
	// A comment now and then keeps proxies from closing an idle stream.
	keep := time.NewTicker(30 * time.Second)
	defer keep.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case b, ok := <-ch:
			if !ok || !send("update", b) {
				return
			}
		case <-keep.C:
			if _, err := w.Write([]byte(": keep-alive\n\n")); err != nil || rc.Flush() != nil {
				return
			}
		}
	}
}
