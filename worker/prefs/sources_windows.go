package prefs

import (
	"fmt"
	"syscall"
	"time"
	"unsafe"
)

// SystemSources are this machine's sources: idle time from
// GetLastInputInfo (input in the worker's own session: a worker run as a
// service in session 0 sees none, so run it in the volunteer's session),
// the power source from GetSystemPowerStatus. Other programs' CPU use is
// not read on Windows.
func SystemSources() Sources {
	return Sources{Idle: lastInputIdle{}, Battery: powerStatus{}, Describe: map[string]string{
		"idle": "GetLastInputInfo", "battery": "GetSystemPowerStatus",
		"load": "cannot be read on Windows: pause_when_busy is ignored",
	}}
}

var (
	user32               = syscall.NewLazyDLL("user32.dll")
	kernel32             = syscall.NewLazyDLL("kernel32.dll")
	procGetLastInputInfo = user32.NewProc("GetLastInputInfo")
	procGetTickCount     = kernel32.NewProc("GetTickCount")
	procGetPowerStatus   = kernel32.NewProc("GetSystemPowerStatus")
)

type lastInputInfo struct {
	size uint32
	time uint32
}

type lastInputIdle struct{}

func (lastInputIdle) IdleFor(time.Time) (time.Duration, error) {
	info := lastInputInfo{size: uint32(unsafe.Sizeof(lastInputInfo{}))}
	if r, _, err := procGetLastInputInfo.Call(uintptr(unsafe.Pointer(&info))); r == 0 {
		return 0, fmt.Errorf("GetLastInputInfo: %v: idle time %w", err, ErrUnavailable)
	}
	now, _, _ := procGetTickCount.Call()
	return time.Duration(uint32(now)-info.time) * time.Millisecond, nil
}

type systemPowerStatus struct {
	acLineStatus        byte
	batteryFlag         byte
	batteryLifePercent  byte
	systemStatusFlag    byte
	batteryLifeTime     uint32
	batteryFullLifeTime uint32
}

type powerStatus struct{}

func (powerStatus) OnBattery() (bool, error) {
	var st systemPowerStatus
	if r, _, err := procGetPowerStatus.Call(uintptr(unsafe.Pointer(&st))); r == 0 {
		return false, fmt.Errorf("GetSystemPowerStatus: %v", err)
	}
	return st.acLineStatus == 0, nil // 0 offline, 1 online, 255 unknown
}
