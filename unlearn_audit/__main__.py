from unlearn_audit.cli import run

run()
