package hystrix

import (
	"sync"

	"github.com/afex/hystrix-go/hystrix/rolling"
)

type poolMetrics struct {
	Mutex *sync.RWMutex

	Name              string
	MaxActiveRequests *rolling.Number
	Executed          *rolling.Number
}

func newPoolMetrics(name string) *poolMetrics {
	m := &poolMetrics{}
	m.Name = name
	m.Mutex = &sync.RWMutex{}

	m.Reset()

	return m
}

func (m *poolMetrics) Reset() {
	m.Mutex.Lock()
	defer m.Mutex.Unlock()

	m.MaxActiveRequests = rolling.NewNumber()
	m.Executed = rolling.NewNumber()
}

// record counts a call that returned its slot (fork: upstream's Monitor). It runs in the
// caller's goroutine: upstream handed each call over an unbuffered channel to a goroutine per
// circuit, a goroutine switch per call.
func (m *poolMetrics) record(activeCount int) {
	m.Mutex.RLock()

	m.Executed.Increment(1)
	m.MaxActiveRequests.UpdateMax(float64(activeCount))

	m.Mutex.RUnlock()
}
