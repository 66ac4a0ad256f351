package ecptest

// sysSetns is setns(2) on linux/arm64 (package syscall lacks SYS_SETNS).
const sysSetns = 268
