package childproc

import (
	"strings"
	"testing"
)

func TestWatchLogFindsTheListeningURLAndKeepsEveryLine(t *testing.T) {
	log := "time=x level=INFO msg=\"state loaded\"\n" +
		"time=x level=INFO msg=listening node=relay url=http://127.0.0.1:4242 admin=x\n" +
		"time=x level=INFO msg=listening url=http://127.0.0.1:9999\n"
	var lines []string
	done := make(chan struct{})
	found := WatchLog(strings.NewReader(log), func(l string) { lines = append(lines, l) }, done)
	<-done
	if u := <-found; u != "http://127.0.0.1:4242" {
		t.Errorf("URL %q, want the first listening line's", u)
	}
	if len(lines) != 3 {
		t.Errorf("%d lines handed on, want 3", len(lines))
	}
}

func TestWatchLogOfADaemonThatNeverListens(t *testing.T) {
	done := make(chan struct{})
	found := WatchLog(strings.NewReader("level=ERROR msg=\"bad config\"\n"), func(string) {}, done)
	<-done
	select {
	case u := <-found:
		t.Errorf("found %q in a log with no listening line", u)
	default:
	}
}
