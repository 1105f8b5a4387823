from batchsubmit.cli import console

console()
