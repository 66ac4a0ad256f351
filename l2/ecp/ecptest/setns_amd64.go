package ecptest

// sysSetns is setns(2) on linux/amd64 (package syscall lacks SYS_SETNS).
const sysSetns = 308
