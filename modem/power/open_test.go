package power

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"periph.io/x/conn/v3/gpio/gpioreg"
)

func TestOpenNothingConfigured(t *testing.T) {
	c, err := Open(Names{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.PowerOff(context.Background()); !errors.Is(err, ErrNotConfigured) {
		t.Fatalf("PowerOff: %v", err)
	}
}

// Open finds lines by name in periph's registry, where the Linux GPIO
// driver puts the kernel's line names; a fake registered there stands in
// for a real line.
func TestOpenByName(t *testing.T) {
	clk := newClock()
	pin := &fakePin{name: "CELLAGENT_TEST_PWRKEY", clk: clk}
	if err := gpioreg.Register(pin); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gpioreg.Unregister(pin.name) })

	c, err := Open(Names{PWRKey: pin.name, Inverted: true}, WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.PowerOff(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := pin.recorded(), []edge{{0, L}, {0, H}, {ms(750), L}}; !reflect.DeepEqual(got, want) {
		t.Errorf("edges %v, want %v", got, want)
	}
	if err := c.Reset(context.Background()); !errors.Is(err, ErrNotConfigured) {
		t.Errorf("Reset: %v", err)
	}
}

func TestOpenUnknownLine(t *testing.T) {
	_, err := Open(Names{Supply: "CELLAGENT_NO_SUCH_LINE"})
	if err == nil || !strings.Contains(err.Error(), `power: supply: GPIO line "CELLAGENT_NO_SUCH_LINE" not found (`) {
		t.Fatalf("err = %v", err)
	}
}
