from skipvae.cli import main

raise SystemExit(main())
