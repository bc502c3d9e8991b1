package main

const (
	sysOpenat2    = 437
	sysRenameat2  = 316
	sysNewfstatat = 262
	sysUnlinkat   = 263
)
