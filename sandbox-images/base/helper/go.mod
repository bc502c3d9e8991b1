module dockyard/helper

go 1.19
