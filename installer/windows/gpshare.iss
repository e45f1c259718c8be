; Inno Setup 6 script for gpshare on Windows (x64), per-machine install into Program Files.
;
; Build (on the Windows runner, after installer\build.py has made installer\dist\gpshare\):
;   "%ProgramFiles(x86)%\Inno Setup 6\ISCC.exe" /DAppVersion=0.1.0 installer\windows\gpshare.iss
; Signed release build (see installer/README.md, "Code signing"):
;   ISCC.exe /DAppVersion=0.1.0 /DSign "/Sgpsharesign=signtool.exe sign /fd SHA256 /tr http://timestamp.digicert.com /td SHA256 /sha1 <THUMBPRINT> $f" installer\windows\gpshare.iss
; Output: installer\dist\gpshare-<version>-windows-x64-setup.exe
;
; Silent install (practice IT, e.g. from Intune/GPO/PDQ):
;   gpshare-0.1.0-windows-x64-setup.exe /VERYSILENT /SUPPRESSMSGBOXES /NORESTART /SP- /LOG="%TEMP%\gpshare-setup.log"
; Optional: /VAULTDIR="C:\ProgramData\gpshare\vault" sets the machine-wide GPSHARE_VAULT variable
; and creates that folder with Modify rights for the local Users group (shared practice PCs).
; Silent uninstall:
;   "C:\Program Files\gpshare\unins000.exe" /VERYSILENT /SUPPRESSMSGBOXES /NORESTART
;
; The uninstaller removes only what it installed under {app}. It NEVER touches vault data:
; vaults live outside Program Files (per user: %LOCALAPPDATA%\gpshare\vault; or the folder in
; GPSHARE_VAULT), and neither they nor the GPSHARE_VAULT setting are removed on uninstall.

#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#ifndef BundleDir
  ; Relative to this file: installer\dist\gpshare, as installer\build.py writes it.
  #define BundleDir "..\dist\gpshare"
#endif
#ifndef OutputDir
  #define OutputDir "..\dist"
#endif
#define AppName "gpshare"
#define AppExe "gpshare.exe"
#define CliExe "gpshare-cli.exe"

[Setup]
; Never change AppId: Windows uses it to recognise upgrades and the uninstaller.
AppId={{6E0C2B8A-3F4D-4C59-9A51-2F7C9E1D4B60}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher=gpshare
AppComments=Child-safeguarding information-sharing decisions for GP practices
VersionInfoVersion={#AppVersion}
VersionInfoProductName={#AppName}
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
DisableDirPage=auto
; Per-machine install: needs an administrator (or SYSTEM when deployed silently).
PrivilegesRequired=admin
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
MinVersion=10.0.17763
OutputDir={#OutputDir}
OutputBaseFilename=gpshare-{#AppVersion}-windows-x64-setup
SetupIconFile=..\icons\gpshare.ico
UninstallDisplayIcon={app}\{#AppExe}
UninstallDisplayName={#AppName} {#AppVersion}
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
; The app holds its files open while running; close it (or ask) before replacing them.
CloseApplications=yes
RestartApplications=no
ChangesEnvironment=yes
SetupLogging=yes
#ifdef Sign
; Signs Setup and the uninstaller; the tool "gpsharesign" is defined on the ISCC command line
; (/Sgpsharesign=...) so no certificate detail lives in this file.
SignTool=gpsharesign
SignedUninstaller=yes
#endif

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
; The two executables, signed at compile time in a signed build.
#ifdef Sign
Source: "{#BundleDir}\{#AppExe}"; DestDir: "{app}"; Flags: ignoreversion signonce
Source: "{#BundleDir}\{#CliExe}"; DestDir: "{app}"; Flags: ignoreversion signonce
#else
Source: "{#BundleDir}\{#AppExe}"; DestDir: "{app}"; Flags: ignoreversion
Source: "{#BundleDir}\{#CliExe}"; DestDir: "{app}"; Flags: ignoreversion
#endif
; Everything else PyInstaller put in the bundle (_internal\: Python, Qt, forms, fonts, ...).
Source: "{#BundleDir}\*"; Excludes: "{#AppExe},{#CliExe}"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[InstallDelete]
; An upgrade replaces the bundle completely, so no stale module from an older version is loaded.
Type: filesandordirs; Name: "{app}\_internal"

[Dirs]
; Only with /VAULTDIR=...: a machine-wide vault folder every local user may use. Never removed.
Name: "{code:VaultDir}"; Permissions: users-modify; Flags: uninsneveruninstall; Check: VaultDirGiven

[Registry]
; Only with /VAULTDIR=...: GPSHARE_VAULT for every user of this PC. Left in place on uninstall
; so a reinstall finds the same vault; IT removes it by hand if the vault is retired.
Root: HKLM; Subkey: "SYSTEM\CurrentControlSet\Control\Session Manager\Environment"; ValueType: string; ValueName: "GPSHARE_VAULT"; ValueData: "{code:VaultDir}"; Check: VaultDirGiven

[Icons]
Name: "{autoprograms}\{#AppName}"; Filename: "{app}\{#AppExe}"; Comment: "Child-safeguarding information sharing"
Name: "{autoprograms}\{#AppName} command line"; Filename: "{cmd}"; Parameters: "/k ""{app}\{#CliExe}"" --help"; WorkingDir: "{userdocs}"; Comment: "gpshare command line (gpshare-cli --help)"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#AppExe}"; Tasks: desktopicon

[Run]
Filename: "{app}\{#AppExe}"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent

; No [UninstallDelete] section on purpose: the uninstaller removes exactly the files it
; installed, and nothing else. gpshare writes nothing under {app}.

[Code]
function VaultDir(Param: String): String;
begin
  Result := ExpandConstant('{param:VAULTDIR|}');
end;

function VaultDirGiven(): Boolean;
begin
  Result := Trim(VaultDir('')) <> '';
end;

function InitializeSetup(): Boolean;
var
  Dir: String;
begin
  Result := True;
  Dir := Trim(VaultDir(''));
  { A vault inside Program Files would be read-only for users and removed with the app. }
  if (Dir <> '') and ((Pos(Lowercase(ExpandConstant('{commonpf64}')), Lowercase(Dir)) = 1) or
                      (Pos(Lowercase(ExpandConstant('{commonpf32}')), Lowercase(Dir)) = 1)) then
  begin
    SuppressibleMsgBox('/VAULTDIR must not be inside Program Files: ' + Dir, mbError, MB_OK, IDOK);
    Result := False;
  end;
end;
