module ferrylab/fakeferry

go 1.21
