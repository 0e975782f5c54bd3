from nimbus.services.volume.main import main

main()
