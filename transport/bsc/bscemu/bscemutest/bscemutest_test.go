package bscemutest

import (
	"net/http"
	"strings"
	"testing"

	"cellagent/transport/bsc/bscemu"
)

func TestStart(t *testing.T) {
	var s *bscemu.Server
	t.Run("started", func(t *testing.T) {
		s = Start(t, bscemu.Config{Users: map[string]string{"admin": "pw"}}, nil)
		if !strings.HasPrefix(s.URL(), "http://127.0.0.1:") {
			t.Fatalf("URL %q", s.URL())
		}
		resp, err := http.Get(s.URL() + "/management-api/v1/sims")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("unauthenticated call: %s", resp.Status)
		}
	})
	// Closed when the test that started it ended.
	if resp, err := http.Get(s.URL() + "/management-api/v1/sims"); err == nil {
		resp.Body.Close()
		t.Fatalf("still serving after its test ended: %s", resp.Status)
	}
}
