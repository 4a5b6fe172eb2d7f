package amqp1

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluiceio/sluice/sink"
)

func TestOptions(t *testing.T) {
	c, err := Options{URL: "amqp://u:p%40ss@broker:5673"}.config()
	if err != nil {
		t.Fatal(err)
	}
	if c.hostPort != "broker:5673" || c.user != "u" || c.password != "p@ss" || c.useTLS || c.Address != "{topic}" ||
		len(c.caps) != 1 || c.caps[0] != "queue" || c.WriteTimeout != DefaultWriteTimeout || c.UnknownAddressGrace != DefaultUnknownAddressGrace {
		t.Fatalf("config %+v", c)
	}
	c, err = Options{URL: "amqps://broker", TargetCapabilities: []string{}, UnknownAddressGrace: -1}.config()
	if err != nil {
		t.Fatal(err)
	}
	if c.hostPort != "broker:5671" || !c.useTLS || c.TLS.ServerName != "broker" || c.user != "" || len(c.caps) != 0 || c.UnknownAddressGrace != 0 {
		t.Fatalf("config %+v", c)
	}
	for _, bad := range []Options{
		{},
		{URL: "http://broker"},
		{URL: "amqp://"},
		{URL: "amqp://broker/vhost"},
		{URL: "amqp://broker?x=1"},
		{URL: "amqp://:pw@broker"},
		{URL: "amqp://broker", Address: "{partition}"},
		{URL: "amqp://broker", WriteTimeout: -time.Second},
		{URL: "amqp://broker", TargetCapabilities: []string{" "}},
	} {
		_, err := bad.config()
		if err == nil {
			t.Errorf("%+v accepted", bad.URL)
			continue
		}
		if strings.Contains(err.Error(), "pw") {
			t.Errorf("error shows the password: %v", err)
		}
	}
	o := Options{URL: "amqp://u:secret@broker"}
	for _, s := range []string{o.String(), fmt.Sprintf("%#v", o), fmt.Sprint(o)} {
		if strings.Contains(s, "secret") {
			t.Errorf("%q shows the password", s)
		}
	}
}

func TestCheckAndEncode(t *testing.T) {
	if err := check(&sink.Message{Headers: []sink.Header{{Key: "a"}, {Key: "a"}}}); err == nil {
		t.Error("repeated header accepted")
	}
	if err := check(&sink.Message{Headers: []sink.Header{{Key: KeyProperty}}}); err == nil {
		t.Error("header sluice-key accepted")
	}
	e := newEncoder()
	m := e.encode(&sink.Message{ID: "own", Key: []byte{0xff}, Value: nil,
		Headers: []sink.Header{{Key: "h", Value: []byte("v")}, {Key: sink.IDHeader, Value: []byte("first")}}})
	if m.Properties.MessageID != "first" || m.ApplicationProperties[sink.IDHeader] != "first" {
		t.Errorf("chained id: %v %v", m.Properties.MessageID, m.ApplicationProperties)
	}
	if k, ok := m.ApplicationProperties[KeyProperty].([]byte); !ok || string(k) != "\xff" {
		t.Errorf("binary key: %#v", m.ApplicationProperties[KeyProperty])
	}
	if !m.Header.Durable || len(m.Data) != 1 || m.Data[0] == nil || len(m.Data[0]) != 0 {
		t.Errorf("message %+v", m)
	}
	m = e.encode(&sink.Message{ID: "x", Value: []byte("v")})
	if _, ok := m.ApplicationProperties[KeyProperty]; ok || m.ApplicationProperties["h"] != nil {
		t.Errorf("reused maps leak: %v", m.ApplicationProperties)
	}
}
