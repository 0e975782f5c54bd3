from nimbus.services.scheduler.main import main

main()
