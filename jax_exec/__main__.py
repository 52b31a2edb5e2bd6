from jax_exec.cli import main

main()
